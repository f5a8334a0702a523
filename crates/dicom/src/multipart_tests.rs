//! The multipart parser on well-formed, odd and hostile bodies.

use super::*;

fn body(parts: &[&[u8]], boundary: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for p in parts {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        b.extend_from_slice(p);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

#[test]
fn parts_come_back_whole_whatever_the_chunking() {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let tricky = b"first\r\n--xyz-not-quite\r\n--xy\r\n".to_vec();
    let b = body(&[&tricky, b"", &data], "xyz");
    let parts = parse_all(&b, "xyz", Limits::default()).expect("parse");
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].1, tricky);
    assert!(parts[1].1.is_empty());
    assert_eq!(parts[2].1, data);
    assert_eq!(
        header(&parts[0].0, "content-type"),
        Some("application/dicom")
    );
}

#[test]
fn preamble_epilogue_padding_and_empty_headers() {
    let b = b"this is a preamble\r\n--b  \r\n\r\nno headers\r\n--b\r\nX-A: 1\r\n\r\n\r\n--b--\r\nepilogue";
    let parts = parse_all(b, "b", Limits::default()).expect("parse");
    assert_eq!(parts.len(), 2);
    assert!(parts[0].0.is_empty());
    assert_eq!(parts[0].1, b"no headers");
    assert_eq!(parts[1].0, vec![("X-A".to_string(), "1".to_string())]);
    assert!(parts[1].1.is_empty());
}

#[test]
fn a_body_of_no_parts_as_dotnet_writes_it_has_no_parts() {
    let b = b"--b\r\n\r\n--b--\r\n";
    assert_eq!(
        parse_all(b, "b", Limits::default()).expect("parse"),
        Vec::new()
    );
    // Byte by byte: the parser waits while the bytes could still be that closing boundary.
    let mut p = Parser::new("b", Limits::default());
    let mut events = Vec::new();
    for byte in b {
        p.feed(&[*byte]);
        while let Some(e) = p.next_event().expect("event") {
            events.push(e);
        }
    }
    assert_eq!(events, vec![Event::End]);
    // An empty header block followed by data is still a part.
    let b = b"--b\r\n\r\n--not-the-boundary\r\n--b--\r\n";
    let parts = parse_all(b, "b", Limits::default()).expect("parse");
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].1, b"--not-the-boundary");
}

#[test]
fn hostile_bodies_are_refused_within_the_window() {
    let limits = Limits::default();
    // A boundary that never comes: refused after 64 KiB, and the parser never holds more than a delimiter.
    let mut p = Parser::new("b", limits);
    let chunk = vec![b'a'; 8192];
    let mut err = None;
    for _ in 0..100 {
        p.feed(&chunk);
        match p.next_event() {
            Ok(_) => assert!(p.buf.len() < 16, "{}", p.buf.len()),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert_eq!(err, Some(MultipartError::NoBoundary(MAX_HEAD)));
    // Headers that never end.
    let mut b = b"--b\r\nContent-Type: application/dicom\r\nX: ".to_vec();
    b.extend(vec![b'a'; 70_000]);
    assert_eq!(
        parse_all(&b, "b", limits).err(),
        Some(MultipartError::HeadersTooLong(MAX_HEAD))
    );
    // Too many parts.
    let many: Vec<&[u8]> = vec![b"x"; 11];
    let small = Limits {
        max_parts: 10,
        ..limits
    };
    assert_eq!(
        parse_all(&body(&many, "b"), "b", small).err(),
        Some(MultipartError::TooManyParts(10))
    );
    // Truncated, a bad header line, a boundary followed by garbage.
    let full = body(&[b"abc"], "b");
    assert_eq!(
        parse_all(&full[..full.len() - 5], "b", limits).err(),
        Some(MultipartError::Incomplete)
    );
    assert_eq!(
        parse_all(b"--b\r\nno colon\r\n\r\nx\r\n--b--", "b", limits).err(),
        Some(MultipartError::BadHeader)
    );
    // A boundary that is only the prefix of a line is not a delimiter.
    assert_eq!(
        parse_all(b"--bX\r\n\r\nx\r\n--b--", "b", limits).map(|p| p.len()),
        Ok(0)
    );
}

#[test]
fn cost_is_linear_in_the_number_of_parts() {
    let tiny: Vec<&[u8]> = vec![b"0123456789"; 100_000];
    let b = body(&tiny, "boundary-boundary");
    let limits = Limits {
        max_parts: 200_000,
        ..Limits::default()
    };
    let started = std::time::Instant::now();
    let parts = parse_all(&b, "boundary-boundary", limits).expect("parse");
    assert_eq!(parts.len(), 100_000);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Every event of `body` fed in chunks of `sizes` (cycled), whole chunks (`feed_bytes`) or copied.
fn events_of(body: &[u8], boundary: &str, sizes: &[usize], whole: bool) -> Vec<Event> {
    let mut p = Parser::new(boundary, Limits::default());
    let mut events: Vec<Event> = Vec::new();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        let end = body.len().min(at + size);
        if whole {
            p.feed_bytes(Bytes::copy_from_slice(&body[at..end]));
        } else {
            p.feed(&body[at..end]);
        }
        at = end;
        while let Some(e) = p.next_event().expect("event") {
            // Adjacent data joined: how the data is cut is the feeding's, not the body's.
            match (events.last_mut(), e) {
                (Some(Event::Data(d)), Event::Data(more)) => {
                    let mut joined = d.to_vec();
                    joined.extend_from_slice(&more);
                    *d = Bytes::from(joined);
                }
                (_, e) => events.push(e),
            }
        }
        if at == body.len() {
            break;
        }
    }
    p.finish().expect("complete");
    events
}

#[test]
fn whole_chunks_give_the_events_copied_chunks_give() {
    let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    // Near-delimiters at every offset a chunk edge can cut: a line end, dashes, part of the boundary.
    let tricky = b"\r\n--xy\r\n-\r\n--xyz-\r\n--x\r\n--xyz \r".to_vec();
    let bodies = [
        body(&[&tricky, b"", &data, &tricky], "xyz"),
        body(&[b"a", b"\r\n--xy", b"--xyz"], "xyz"),
        b"preamble\r\n--xyz\r\n\r\nno headers\r\n--xyz  \r\nX-A: 1\r\n\r\n\r\n--xyz--\r\nepilogue"
            .to_vec(),
    ];
    let mut sizes: Vec<Vec<usize>> = (1..=12).map(|n| vec![n]).collect();
    sizes.extend([
        vec![4099],
        vec![3, 1, 7, 2, 11],
        vec![6, 6, 1],
        vec![20_000, 2],
    ]);
    for b in &bodies {
        let expected = events_of(b, "xyz", &[1], false);
        for s in &sizes {
            assert_eq!(events_of(b, "xyz", s, true), expected, "chunks of {s:?}");
        }
    }
}

#[test]
fn a_whole_chunk_of_data_comes_out_uncopied() {
    let mut p = Parser::new("b", Limits::default());
    p.feed(b"--b\r\nContent-Type: application/dicom\r\n\r\n");
    assert!(matches!(p.next_event(), Ok(Some(Event::Part(_)))));
    assert_eq!(p.next_event().expect("event"), None);
    let chunk = Bytes::from(vec![7u8; 10_000]);
    p.feed_bytes(chunk.clone());
    let Ok(Some(Event::Data(d))) = p.next_event() else {
        panic!("data");
    };
    // All but what could start a delimiter ("\r\n--b": 5 bytes less 1), out of the same memory.
    assert_eq!(d.len(), 10_000 - 4);
    assert_eq!(d.as_ptr(), chunk.as_ptr());
}
