//! A learner at an SSH terminal, in Rust (russh's client): logs in (the class code the first time, the
//! personal code the lab then shows after), asks for a pty,
//! opens the shell, types keys, and reads the screen through a terminal emulator (vt100) — what the
//! classroom's SSH tests and its bench drive. Standalone: the bench includes it by path.

use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::client::{self, Handle, Msg};
use russh::keys::PublicKeyOrCertificate;
use russh::{Channel, ChannelMsg};

/// Accepts any host key (the tests compare the fingerprint themselves where it matters).
pub struct Accept;

impl client::Handler for Accept {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Connects and tries the password; `Ok(None)` when it is refused.
pub async fn login(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
) -> Result<Option<Handle<Accept>>, String> {
    login_from(addr, None, user, password).await
}

/// [`login`] from the local address `from` (a loopback address of its own: another machine, as the
/// classroom sees it), or the one the system picks.
pub async fn login_from(
    addr: std::net::SocketAddr,
    from: Option<std::net::IpAddr>,
    user: &str,
    password: &str,
) -> Result<Option<Handle<Accept>>, String> {
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(Duration::from_secs(600)),
        ..Default::default()
    });
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(ip) = from {
        socket
            .bind(std::net::SocketAddr::new(ip, 0))
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut handle = client::connect_stream(config, stream, Accept)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let auth = handle
        .authenticate_password(user, password)
        .await
        .map_err(|e| format!("auth: {e}"))?;
    Ok(auth.success().then_some(handle))
}

/// The personal code a first login shows (`Your personal code is h4rt-2mqa — …`).
pub fn personal_code(screen: &str) -> Option<String> {
    let after = screen.split("Your personal code is ").nth(1)?;
    let code: String = after.chars().take(9).collect();
    let ok = code.len() == 9
        && code.char_indices().all(|(i, c)| {
            if i == 4 {
                c == '-'
            } else {
                c.is_ascii_alphanumeric()
            }
        });
    ok.then_some(code)
}

/// A learner's terminal session.
pub struct Terminal {
    pub handle: Handle<Accept>,
    pub channel: Channel<Msg>,
    pub screen: vt100::Parser,
    /// Bytes received, in all.
    pub received: usize,
    pub exit: Option<u32>,
    pub closed: bool,
}

fn size(cols: u16, rows: u16) -> (NonZeroU16, NonZeroU16) {
    (
        NonZeroU16::new(rows.max(1)).unwrap_or(NonZeroU16::MIN),
        NonZeroU16::new(cols.max(1)).unwrap_or(NonZeroU16::MIN),
    )
}

impl Terminal {
    /// Logs in as `user` with `code`, asks for a `cols`×`rows` pty and opens the shell.
    pub async fn open(
        addr: std::net::SocketAddr,
        user: &str,
        code: &str,
        cols: u16,
        rows: u16,
    ) -> Result<Terminal, String> {
        Terminal::open_from(addr, None, user, code, (cols, rows)).await
    }

    /// [`Terminal::open`] from the local address `from` (see [`login_from`]).
    pub async fn open_from(
        addr: std::net::SocketAddr,
        from: Option<std::net::IpAddr>,
        user: &str,
        code: &str,
        (cols, rows): (u16, u16),
    ) -> Result<Terminal, String> {
        let handle = login_from(addr, from, user, code)
            .await?
            .ok_or_else(|| format!("{user}: the code was refused"))?;
        let channel = handle
            .channel_open_session()
            .await
            .map_err(|e| format!("session: {e}"))?;
        channel
            .request_pty(true, "xterm-256color", cols.into(), rows.into(), 0, 0, &[])
            .await
            .map_err(|e| format!("pty: {e}"))?;
        channel
            .request_shell(true)
            .await
            .map_err(|e| format!("shell: {e}"))?;
        let (r, c) = size(cols, rows);
        Ok(Terminal {
            handle,
            channel,
            screen: vt100::Parser::new(r, c, 0),
            received: 0,
            exit: None,
            closed: false,
        })
    }

    /// A new learner's first login with the class code: reads their personal code off the screen,
    /// presses Enter and waits for the lab. Returns the terminal and the code.
    pub async fn first_login(
        addr: std::net::SocketAddr,
        user: &str,
        class_code: &str,
        cols: u16,
        rows: u16,
    ) -> Result<(Terminal, String), String> {
        Terminal::first_login_from(addr, None, user, class_code, (cols, rows)).await
    }

    /// [`Terminal::first_login`] from the local address `from` (see [`login_from`]).
    pub async fn first_login_from(
        addr: std::net::SocketAddr,
        from: Option<std::net::IpAddr>,
        user: &str,
        class_code: &str,
        size: (u16, u16),
    ) -> Result<(Terminal, String), String> {
        let mut t = Terminal::open_from(addr, from, user, class_code, size).await?;
        let wait = Duration::from_secs(60);
        let s = t
            .wait_for("the personal code", |s| personal_code(s).is_some(), wait)
            .await?;
        let code = personal_code(&s).ok_or("no personal code")?;
        t.send(b"\r").await?;
        t.wait_for("the lab", |s| s.contains("Exercises"), wait)
            .await?;
        Ok((t, code))
    }

    /// What the screen shows now.
    pub fn contents(&self) -> String {
        self.screen.screen().contents()
    }

    /// Types `bytes` (a key: `b"d"`, an arrow: `b"\x1b[B"`).
    pub async fn send(&self, bytes: &[u8]) -> Result<(), String> {
        self.channel
            .data_bytes(bytes.to_vec())
            .await
            .map_err(|e| format!("send: {e}"))
    }

    /// The window changes size.
    pub async fn resize(&mut self, cols: u16, rows: u16) -> Result<(), String> {
        let (r, c) = size(cols, rows);
        self.screen.set_size(r, c);
        self.channel
            .window_change(cols.into(), rows.into(), 0, 0)
            .await
            .map_err(|e| format!("resize: {e}"))
    }

    /// Reads what arrives until `pred` holds for the screen (its contents), or `timeout`.
    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, String> {
        let end = Instant::now() + timeout;
        loop {
            let now = self.contents();
            if pred(&now) {
                return Ok(now);
            }
            if self.closed {
                return Err(format!("closed while waiting for {what}; screen:\n{now}"));
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("timed out waiting for {what}; screen:\n{now}"));
            }
            match tokio::time::timeout(left, self.channel.wait()).await {
                Ok(Some(ChannelMsg::Data { data })) => {
                    self.received += data.len();
                    self.screen.process(&data);
                }
                Ok(Some(ChannelMsg::ExitStatus { exit_status })) => self.exit = Some(exit_status),
                Ok(Some(ChannelMsg::Close)) | Ok(None) => self.closed = true,
                Ok(Some(_)) => {}
                Err(_) => {}
            }
        }
    }

    /// Reads until the channel closes (or `timeout`); the text it printed last.
    pub async fn until_closed(&mut self, timeout: Duration) -> Result<String, String> {
        self.wait_for("the end", |_| false, timeout)
            .await
            .or_else(|e| {
                if self.closed {
                    Ok(self.contents())
                } else {
                    Err(e)
                }
            })
    }
}
