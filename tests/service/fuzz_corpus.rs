//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets' entry points on
//! stable: what a long nightly run found (and the seeds) stays fixed. `regenerate_corpus` (ignored) writes
//! the seeds again.

use std::path::{Path, PathBuf};

use dicomlab_dicom::hostile::{self, ITEM, SEQUENCE_END, UNDEFINED};
use dicomlab_testkit::fuzzing::TARGETS;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

#[test]
fn every_corpus_file_replays_without_a_finding() {
    for (name, target) in TARGETS {
        let dir = corpus().join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(
            files.len() >= 5,
            "{name}: only {} corpus files",
            files.len()
        );
        for f in &files {
            let bytes = std::fs::read(f).expect("corpus file");
            let outcome = std::panic::catch_unwind(|| target(&bytes));
            assert!(outcome.is_ok(), "{name}: {} is a finding", f.display());
        }
        eprintln!("{name}: {} file(s) replayed", files.len());
    }
}

/// A small deterministic mutator (xorshift): bit flips, byte sets, cuts, duplications and interesting
/// 32-bit values, so `cargo test` on stable explores a little beyond the seeds every time.
struct Mutator(u64);

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut v = input.to_vec();
        for _ in 0..1 + self.below(4) {
            if v.is_empty() {
                v.push(self.next() as u8);
                continue;
            }
            let at = self.below(v.len());
            match self.below(6) {
                0 => v[at] ^= 1 << self.below(8),
                1 => v[at] = self.next() as u8,
                2 => v.truncate(at),
                3 => {
                    let end = (at + 1 + self.below(64)).min(v.len());
                    let chunk = v[at..end].to_vec();
                    let to = self.below(v.len());
                    v.splice(to..to, chunk);
                }
                4 => {
                    let values = [
                        0u32,
                        1,
                        0x7FFF_FFFF,
                        0xFFFF_FFFE,
                        0xFFFF_FFFF,
                        0x8000_0000,
                        0xFFFF,
                    ];
                    let x = values[self.below(values.len())].to_le_bytes();
                    let end = (at + 4).min(v.len());
                    v[at..end].copy_from_slice(&x[..end - at]);
                }
                _ => {
                    let end = (at + self.below(16)).min(v.len());
                    v.drain(at..end);
                }
            }
        }
        v
    }
}

#[test]
fn mutated_seeds_make_no_finding() {
    let rounds: usize = std::env::var("FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15u64);
    let mut m = Mutator(seed | 1);
    for (name, target) in TARGETS {
        let dir = corpus().join(name);
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .expect("corpus")
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read(e.path()).ok())
            .collect();
        seeds.sort();
        for seed in &seeds {
            let mut input = seed.clone();
            for _ in 0..rounds {
                let restart = m.below(4) == 0;
                input = m.mutate(if restart { seed } else { &input });
                let outcome = std::panic::catch_unwind(|| target(&input));
                if outcome.is_err() {
                    let out = std::env::temp_dir().join(format!("dicomlab-finding-{name}"));
                    let _ = std::fs::write(&out, &input);
                    panic!(
                        "{name}: a mutated input is a finding (saved to {})",
                        out.display()
                    );
                }
            }
        }
    }
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus().join(target);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write");
}

#[test]
#[ignore = "writes fuzz/corpus/*/seed-*: run with --ignored after changing the seeds"]
fn regenerate_corpus() {
    let (st, se, sop) = ("1.2.3", "1.2.3.4", "1.2.3.4.5");
    // DICOM Part 10.
    let mut encapsulated = hostile::required(st, se, sop);
    encapsulated.extend(hostile::image_attributes(1, 2, 2, 8, None));
    encapsulated.extend(hostile::header(
        dicom_dictionary_std::tags::PIXEL_DATA,
        dicom_core::VR::OB,
        UNDEFINED,
    ));
    encapsulated.extend(hostile::item(ITEM, 0));
    encapsulated.extend(hostile::item(ITEM, 4));
    encapsulated.extend_from_slice(b"abcd");
    encapsulated.extend(hostile::item(SEQUENCE_END, 0));
    let image = hostile::image(st, se, sop, 8, 8, 3);
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("image", image.clone()),
        ("image-truncated", image[..image.len() - 20].to_vec()),
        (
            "no-group-length",
            hostile::without_group_length(st, se, sop),
        ),
        ("nested-3", hostile::deeply_nested(st, se, sop, 3)),
        ("nested-40", hostile::deeply_nested(st, se, sop, 40)),
        (
            "lying-length",
            hostile::lying_length(st, se, sop, 0xFFFF_FFF0),
        ),
        ("pixel-overflow", hostile::pixel_overflow(st, se, sop)),
        ("deflated", hostile::deflate_bomb(st, se, sop, 64 * 1024)),
        (
            "encapsulated",
            hostile::part10("1.2.840.10008.1.2.4.50", sop, &encapsulated, true),
        ),
        ("not-dicom", b"this is not DICOM".to_vec()),
    ];
    for (name, bytes) in seeds {
        write("dicom_part10", name, &bytes);
    }
    // multipart: the boundary line, then the body.
    let many: String = (0..70)
        .map(|_| "--b\r\nContent-Type: application/dicom\r\n\r\nx\r\n")
        .collect();
    let seeds: Vec<(&str, String)> = vec![
        (
            "two-parts",
            "b\n--b\r\nContent-Type: application/dicom\r\n\r\nabc\r\n--b\r\n\r\n\r\n--b--\r\n"
                .into(),
        ),
        (
            "preamble-epilogue",
            "xyz\npreamble\r\n--xyz  \r\nX-A: 1\r\n\r\ndata--xyz\r\n--xyz--\r\nepilogue".into(),
        ),
        (
            "no-closing",
            "b\n--b\r\nContent-Type: application/dicom\r\n\r\nabc".into(),
        ),
        (
            "prefix-boundary",
            "b\n--bb\r\n\r\nx\r\n--b\r\n\r\ny\r\n--b--".into(),
        ),
        (
            "bad-header",
            "b\n--b\r\nno colon here\r\n\r\nx\r\n--b--".into(),
        ),
        ("many-parts", format!("b\n{many}--b--\r\n")),
        (
            "long-headers",
            format!("b\n--b\r\nX: {}\r\n\r\nx\r\n--b--", "a".repeat(2000)),
        ),
    ];
    for (name, body) in seeds {
        write("multipart", name, body.as_bytes());
    }
    // QIDO query strings.
    let fuzzy: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    let seeds: Vec<(&str, String)> = vec![
        ("patient", "PatientID=pat-001&limit=10&offset=0".into()),
        (
            "fuzzy-many",
            format!("fuzzymatching=true&PatientName={}", fuzzy.join("%5E")),
        ),
        (
            "range",
            "StudyDate=20200101-20201231&includefield=all".into(),
        ),
        ("bad-range", "StudyDate=20201231-20200101".into()),
        (
            "includefield",
            "includefield=00100010,PatientAge,StudyDescription".into(),
        ),
        ("garbage", "%%%&&=&=%ZZ&limit=-1&limit=x".into()),
        (
            "unicode",
            "PatientName=J%C3%B6rg%5E%E2%80%AE&fuzzymatching=true".into(),
        ),
    ];
    for (name, q) in seeds {
        write("qido_query", name, q.as_bytes());
    }
    // DICOM JSON.
    let seeds: Vec<(&str, String)> = vec![
        (
            "metadata",
            r#"[{"00100010":{"vr":"PN","Value":[{"Alphabetic":"Anony^Mous"}]},"00200013":{"vr":"IS","Value":[1]},"00081140":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3"]}}]}}]"#.into(),
        ),
        ("non-ascii-keys", r#"[{"aéééx":{"vr":"LO","Value":["x"]},"ääää":{"vr":"PN"}}]"#.into()),
        ("escapes", "[{\"00100020\":{\"vr\":\"LO\",\"Value\":[\"\\u001b]52;c;eA==\\u0007\"]}}]".into()),
        ("deep", format!("{}{}", "[".repeat(200), "]".repeat(200))),
        ("odd-values", r#"{"00100010":{"vr":"PN","Value":[null,5,{"Alphabetic":7}]},"0020000D":{"Value":"x"}}"#.into()),
        ("numbers", r#"[{"00280010":{"vr":"US","Value":[1e400,-1,18446744073709551616]}}]"#.into()),
    ];
    for (name, json) in seeds {
        write("dicom_json", name, json.as_bytes());
    }
    // Tokens.
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let header = b64(r#"{"alg":"HS256","typ":"JWT"}"#);
    let seeds: Vec<(&str, String)> = vec![
        (
            "claims",
            format!(
                "{header}.{}.c2ln",
                b64(
                    r#"{"aud":"https://dicom.healthcareapis.azure.com","iss":"https://sts.windows.net/t/","iat":1,"nbf":1,"exp":4102444800,"tid":"t","appid":"c","oid":"c","sub":"c","roles":["DICOM Data Owner"],"ver":"1.0"}"#
                )
            ),
        ),
        (
            "exp-max",
            format!("{header}.{}.c2ln", b64(r#"{"exp":18446744073709551615}"#)),
        ),
        (
            "escapes",
            format!(
                "{header}.{}.c2ln",
                b64("{\"tid\":\"\\u001b]0;x\\u0007\",\"roles\":[\"\\u001b[2J\"]}")
            ),
        ),
        (
            "alg-none",
            format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"appid":"c"}"#)),
        ),
        ("garbage", "a.b.c".into()),
        ("empty", String::new()),
    ];
    for (name, token) in seeds {
        write("token_claims", name, token.as_bytes());
    }
}
