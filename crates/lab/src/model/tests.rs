//! Unit tests of the lab as data: parsing, validation, the notes a lab file gets.

use super::*;

const HEAD: &str = "format_version = 2\nid = \"x\"\ntitle = \"x\"\n[[dataset.instance]]\nname = \"a\"\nfile = \"a.dcm\"\ngenerator = \"red-triangle\"\nstudy = \"1.2.3\"\nseries = \"1.2.3.4\"\nsop = \"1.2.3.4.5\"\n[[exercise]]\nid = \"e\"\ntitle = \"e\"\n";

fn step(id: &str, extra: &str) -> String {
    format!("[[exercise.step]]\nid = \"{id}\"\ntitle = \"s\"\ninstructions = \"i\"\n{extra}\n")
}

#[test]
fn the_lab_files_kind_names_are_check_kinds() {
    for kind in CheckKind::ALL {
        assert_eq!(
            serde_json::to_value(kind).ok(),
            Some(serde_json::Value::from(kind.name()))
        );
        // The least a check of this kind needs, under the name the lab file writes.
        let fields = match kind {
            CheckKind::Store => r#", "instances": ["red"]"#,
            CheckKind::Requests => r#", "requests": []"#,
            CheckKind::TagUpdated => r#", "query_status": "Disabled""#,
            CheckKind::Deleted => r#", "level": "study", "instance": "red""#,
            _ => "",
        };
        let text = format!(r#"{{"kind": "{}"{fields}}}"#, kind.name());
        let check: Check = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(check.kind(), kind);
    }
}

#[test]
fn the_embedded_lab_loads() {
    let lab = Lab::embedded().expect("embedded lab parses");
    assert_eq!(lab.id, "dicom-service");
    assert!(lab.steps().count() >= 15);
    assert!(lab.step("store-samples").is_some());
    assert_eq!(lab.dataset.names().len(), 3);
    for s in lab.steps() {
        assert!(
            !s.instructions.trim().is_empty(),
            "{} has instructions",
            s.id
        );
    }
}

#[test]
fn an_unknown_check_kind_names_the_line() {
    let text = format!("{HEAD}{}", step("s", "check = { kind = \"teleport\" }"));
    let err = Lab::parse(&text, "bad.toml").expect_err("unknown kind");
    let msg = err.to_string();
    assert!(
        msg.contains("bad.toml") && msg.contains("line 18") && msg.contains("teleport"),
        "{msg}"
    );
}

#[test]
fn dangling_requires_unknown_instances_and_placeholders_name_their_line() {
    let text = format!(
        "{HEAD}{}",
        step("s", "requires = [\"nope\"]\ncheck = { kind = \"token\" }")
    );
    let msg = Lab::parse(&text, "l.toml")
        .expect_err("requires")
        .to_string();
    assert!(
        msg.starts_with("l.toml:18:") && msg.contains("'nope'"),
        "{msg}"
    );

    let text = format!(
        "{HEAD}{}",
        step(
            "s",
            "check = { kind = \"store\", instances = [\"a\", \"zz\"] }"
        )
    );
    let msg = Lab::parse(&text, "l.toml")
        .expect_err("instance")
        .to_string();
    assert!(
        msg.starts_with("l.toml:18:") && msg.contains("'zz'") && msg.contains("it has: a"),
        "{msg}"
    );

    let text = format!(
        "{HEAD}{}",
        step(
            "s",
            "show_me = \"curl {baseUrl}/studies/{b.study}\"\ncheck = { kind = \"token\" }"
        )
    );
    let msg = Lab::parse(&text, "l.toml")
        .expect_err("placeholder")
        .to_string();
    assert!(
        msg.starts_with("l.toml:18:") && msg.contains("{b.study}"),
        "{msg}"
    );

    let text = format!(
        "{HEAD}{}{}",
        step("later", "requires = [\"s\"]\ncheck = { kind = \"token\" }"),
        step("s", "check = { kind = \"token\" }")
    );
    let msg = Lab::parse(&text, "l.toml").expect_err("order").to_string();
    assert!(msg.contains("come before"), "{msg}");

    let text = format!(
        "{HEAD}{}",
        step(
            "s",
            "check = { kind = \"requests\", requests = [\"FETCH studies/{a.study}\"] }"
        )
    );
    let msg = Lab::parse(&text, "l.toml").expect_err("method").to_string();
    assert!(msg.contains("FETCH"), "{msg}");
}

#[test]
fn lint_holes_are_refused() {
    let cases = [
        (
            step(
                "s",
                "check = { kind = \"requests\", requests = [{ any = [] }] }",
            ),
            "no alternative",
        ),
        (
            step(
                "s",
                "check = { kind = \"tag_updated\", query_status = \"Enabled\" }",
            ),
            "enabled or disabled",
        ),
        (
            step(
                "s",
                "check = { kind = \"requests\", requests = [\"studies\"] }\nquestion = { ask = \"q\", answer = { from = \"metadata\", instance = \"a\", attribute = \"StudyDat\" } }",
            ),
            "not a DICOM keyword",
        ),
        (
            step(
                "s",
                "check = { kind = \"requests\", requests = [\"PUT studies\"] }",
            ),
            "not an HTTP method",
        ),
    ];
    for (extra, want) in cases {
        let text = format!("{HEAD}{extra}");
        let msg = Lab::parse(&text, "l.toml").expect_err(want).to_string();
        assert!(msg.contains(want), "{msg}");
    }
    // Two instances in one file, or with one SOP Instance UID.
    let twice = HEAD.replace(
        "[[exercise]]",
        "[[dataset.instance]]\nname = \"b\"\nfile = \"A.dcm\"\ngenerator = \"red-triangle\"\nstudy = \"1.2.3\"\nseries = \"1.2.3.4\"\nsop = \"1.2.3.4.6\"\n[[exercise]]",
    );
    let msg = Lab::parse(
        &format!("{twice}{}", step("s", "check = { kind = \"token\" }")),
        "l.toml",
    )
    .expect_err("file")
    .to_string();
    assert!(msg.contains("used by another instance"), "{msg}");
    let twice = HEAD.replace(
        "[[exercise]]",
        "[[dataset.instance]]\nname = \"b\"\nfile = \"b.dcm\"\ngenerator = \"red-triangle\"\nstudy = \"1.2.3\"\nseries = \"1.2.3.4\"\nsop = \"1.2.3.4.5\"\n[[exercise]]",
    );
    let msg = Lab::parse(
        &format!("{twice}{}", step("s", "check = { kind = \"token\" }")),
        "l.toml",
    )
    .expect_err("sop")
    .to_string();
    assert!(msg.contains("another instance's too"), "{msg}");
}

#[test]
fn a_good_small_lab_loads() {
    let text = format!(
        "{HEAD}{}{}",
        step("store", "check = { kind = \"store\", instances = [\"a\"] }"),
        step(
            "look",
            "requires = [\"store\"]\nshow_me = \"curl {baseUrl}/studies/{a.study}\"\ncheck = { kind = \"requests\", requests = [\"GET studies/{a.study}/metadata\", { any = [\"GET instances?SOPInstanceUID={a}\", \"GET studies?StudyInstanceUID={a.study}\"], label = \"a search\" }] }\nquestion = { ask = \"Age?\", answer = { from = \"metadata\", instance = \"a\", attribute = \"PatientAge\" } }"
        )
    );
    let lab = Lab::parse(&text, "ok.toml").expect("loads");
    assert_eq!(lab.steps().count(), 2);
    assert!(lab.step("look").is_some_and(|s| s.question.is_some()));
}

#[test]
fn a_version_1_lab_is_refused_clearly() {
    let err = Lab::parse("format_version = 1\nid = \"x\"\n", "old.toml").expect_err("version");
    assert!(err.to_string().contains("format_version 1"));
}

#[test]
fn a_lab_says_what_the_practice_service_starts_with() {
    let store = step("store", "check = { kind = \"store\", instances = [\"a\"] }");
    let text = format!("{HEAD}{store}[practice]\nroles = [\"DICOM Data Owner\"]\n");
    let lab = Lab::parse(&text, "two.toml").expect("loads");
    assert_eq!(lab.practice.roles, [crate::targets::Role::DataOwner]);
    assert!(lab.notes().is_empty(), "{:?}", lab.notes());
    // Without it, lint says what the learner would meet, and how to fix the lab.
    let lab = Lab::parse(&format!("{HEAD}{store}"), "two.toml").expect("loads");
    assert_eq!(lab.practice, PracticeStart::default());
    let notes = lab.notes().join("\n");
    assert!(
        notes.contains("403") && notes.contains("[practice] roles"),
        "{notes}"
    );
    // A role the practice service does not know names its line.
    let text = format!("{HEAD}{store}[practice]\nroles = [\"Owner of everything\"]\n");
    let msg = Lab::parse(&text, "two.toml")
        .expect_err("unknown role")
        .to_string();
    assert!(
        msg.contains("Owner of everything") && msg.contains("line 20"),
        "{msg}"
    );
}

#[test]
fn lab_text_names_the_token_endpoint_by_its_placeholder() {
    let token = step(
        "token",
        "show_me = \"curl -X POST https://login.microsoftonline.com/{tenantId}/oauth2/token\"\ncheck = { kind = \"token\" }",
    );
    let text = format!("{HEAD}{token}[practice]\nroles = [\"DICOM Data Owner\"]\n");
    let notes = Lab::parse(&text, "t.toml").expect("loads").notes();
    assert!(
        notes.len() == 1 && notes[0].contains("'token'") && notes[0].contains("{tokenUrl}"),
        "{notes:?}"
    );
    // The shipped labs: nothing to point out.
    assert!(Lab::embedded().expect("lab").notes().is_empty());
    let basics = Lab::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../labs/dicomweb-basics.toml"
    )))
    .expect("basics");
    assert!(basics.notes().is_empty(), "{:?}", basics.notes());
}
