//! Unit tests of the tokens and the roles.

use super::*;

#[test]
fn tokens_must_name_their_client_tenant_and_issuer() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = Db::open(&dir.path().join("index.sqlite")).expect("db");
    let auth = Auth::load(&db, true, Duration::from_secs(60), false).expect("auth");
    let (good, _) = auth
        .issue(&auth.lab_client_id, DICOM_RESOURCE, false)
        .expect("issue");
    assert_eq!(
        auth.verify(&good).as_deref(),
        Ok(auth.lab_client_id.as_str())
    );
    let sign = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = serde_json::to_value(
            jsonwebtoken::decode::<Claims>(&good, &auth.decoding, &{
                let mut v = Validation::new(Algorithm::HS256);
                v.validate_aud = false;
                v
            })
            .expect("decode")
            .claims,
        )
        .expect("json");
        edit(&mut claims);
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &auth.encoding).expect("sign")
    };
    type Edit<'a> = &'a dyn Fn(&mut serde_json::Value);
    let cases: [(Edit, &str); 5] = [
        (
            &|c| _ = c.as_object_mut().map(|o| o.remove("appid")),
            "names no client",
        ),
        (
            &|c| c["tid"] = "00000000-0000-0000-0000-000000000000".into(),
            "another tenant",
        ),
        (
            &|c| c["iss"] = "https://sts.windows.net/other/".into(),
            "issuer",
        ),
        (&|c| c["nbf"] = (now_secs() + 3600).into(), "not valid yet"),
        (
            &|c| _ = c.as_object_mut().map(|o| o.remove("nbf")),
            "malformed",
        ),
    ];
    for (edit, why) in cases {
        let err = auth.verify(&sign(edit)).expect_err(why);
        assert!(err.contains(why), "{why}: {err}");
    }
    assert!(secret_matches("abc", "abc") && !secret_matches("abc", "abd"));
    assert!(!secret_matches("ab", "abc"));
}

#[test]
fn role_names() {
    assert_eq!(Role::parse("DICOM Data Owner"), Some(Role::DataOwner));
    assert_eq!(Role::parse("reader"), Some(Role::DataReader));
    assert_eq!(Role::parse("admin"), None);
    assert!(allows(Role::DataReader, Action::Read));
    assert!(!allows(Role::DataReader, Action::Write));
    assert!(allows(Role::DataOwner, Action::ManageExtendedQueryTags));
}
