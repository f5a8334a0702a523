//! A tiny server for the client's tests: a router served on a free loopback port.

/// Serves `app` on `127.0.0.1:0` until the test ends; its origin (`http://127.0.0.1:PORT`).
pub(crate) async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}")
}
