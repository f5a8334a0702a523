//! Transcoding on retrieve (issue 17, item 1): JPEG 2000 lossless and back, frames as image/jp2, what
//! cannot be transcoded (406 in Azure's words), files too large to transcode, and a JPEG 2000 bomb.

use super::*;

const JPEG2000_LOSSLESS: &str = "1.2.840.10008.1.2.4.90";

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

const UNSUPPORTED_TRANSCODING: &str = "The specified transcoding is not supported.";

/// An instance with a real image: `frames` frames of `rows`×`cols`, 8 or 16 bits allocated (`stored` of
/// them used), grey; the pixels as they are in the file.
fn image_instance(
    ids: (&str, &str, &str),
    (rows, cols, frames): (u16, u16, u32),
    (allocated, stored): (u16, u16),
    transfer_syntax: &str,
) -> (Vec<u8>, Vec<u8>) {
    use dicom_core::value::PrimitiveValue;
    use dicom_core::{DataElement, Length};
    let samples = usize::from(rows) * usize::from(cols) * frames as usize;
    let pixels: Vec<u8> = if allocated == 16 {
        (0..samples)
            .flat_map(|i| ((i * 37 % (1 << stored)) as u16).to_le_bytes())
            .collect()
    } else {
        (0..samples).map(|i| (i * 7 % 251) as u8).collect()
    };
    let base = instance(ids.0, ids.1, ids.2, &[]);
    let file = dicom_object::OpenFileOptions::new()
        .from_reader(&base[128..])
        .expect("parse");
    let mut obj = file.into_inner();
    let us = |v: u16| PrimitiveValue::from(v);
    obj.put(DataElement::new(tags::ROWS, VR::US, us(rows)));
    obj.put(DataElement::new(tags::COLUMNS, VR::US, us(cols)));
    obj.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        us(allocated),
    ));
    obj.put(DataElement::new(tags::BITS_STORED, VR::US, us(stored)));
    obj.put(DataElement::new(tags::HIGH_BIT, VR::US, us(stored - 1)));
    obj.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from(frames.to_string()),
    ));
    obj.put(DataElement::new_with_len(
        tags::PIXEL_DATA,
        if allocated == 16 { VR::OW } else { VR::OB },
        Length::defined(pixels.len() as u32),
        PrimitiveValue::U8(pixels.clone().into()),
    ));
    let meta = dicom_object::FileMetaTableBuilder::new()
        .transfer_syntax(transfer_syntax)
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
        .media_storage_sop_instance_uid(ids.2);
    let mut out = Vec::new();
    obj.with_meta(meta)
        .expect("meta")
        .write_all(&mut out)
        .expect("write");
    (out, pixels)
}

/// A Part 10 file from an answer's bytes.
fn part10(bytes: &[u8]) -> dicom_object::DefaultDicomObject {
    assert_eq!(&bytes[128..132], b"DICM", "a Part 10 file");
    dicom_object::OpenFileOptions::new()
        .from_reader(&bytes[128..])
        .expect("a Part 10 file")
}

/// Decodes a JPEG 2000 codestream with dicom-rs (its openjp2 decoder), as the frame of an 8-bit or
/// 16-bit grey image of `rows`×`cols`.
fn decode_j2k(
    codestream: Vec<u8>,
    rows: u16,
    cols: u16,
    (allocated, stored): (u16, u16),
) -> Vec<u8> {
    use dicom_core::value::{PixelFragmentSequence, PrimitiveValue};
    use dicom_core::{DataElement, Length};
    use dicom_pixeldata::PixelDecoder;
    let mut obj = dicom_object::InMemDicomObject::new_empty();
    let us = |v: u16| PrimitiveValue::from(v);
    obj.put(DataElement::new(tags::ROWS, VR::US, us(rows)));
    obj.put(DataElement::new(tags::COLUMNS, VR::US, us(cols)));
    obj.put(DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, us(1)));
    obj.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        us(allocated),
    ));
    obj.put(DataElement::new(tags::BITS_STORED, VR::US, us(stored)));
    obj.put(DataElement::new(tags::HIGH_BIT, VR::US, us(stored - 1)));
    obj.put(DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, us(0)));
    obj.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from("MONOCHROME2"),
    ));
    obj.put(DataElement::new_with_len(
        tags::PIXEL_DATA,
        VR::OB,
        Length::UNDEFINED,
        PixelFragmentSequence::new(Vec::<u32>::new(), vec![codestream]),
    ));
    let sop = uid();
    let file = obj
        .with_meta(
            dicom_object::FileMetaTableBuilder::new()
                .transfer_syntax(JPEG2000_LOSSLESS)
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
                .media_storage_sop_instance_uid(sop.as_str()),
        )
        .expect("meta");
    file.decode_pixel_data().expect("decode").into_data()
}

/// Upstream: RetrieveTransactionResourceTests.GivenSinglePartAcceptHeader_WhenRetrieveInstance_ThenServerShouldReturnExpectedContent
/// (FromExplicitVRLittleEndianToJPEG2000Lossless with "1.2.840.10008.1.2.4.90", then
/// FromJPEG2000LosslessToExplicitVRLittleEndian with null and "1.2.840.10008.1.2.1") and
/// GivenMultipartAcceptHeader_WhenRetrieveInstance_ThenServerShouldReturnExpectedContent — upstream
/// compares with files fo-dicom encoded; here the answer is a Part 10 file in the syntax asked for whose
/// pixels decode (with dicom-rs) to the stored ones, bit for bit.
#[tokio::test]
async fn an_instance_is_transcoded_to_jpeg_2000_lossless_and_back() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let (f, pixels) = image_instance((&st, &se, &sop), (48, 40, 2), (16, 12), EXPLICIT_LE);
    assert_eq!(az.store("v2", "studies", &[f]).await.status, 200);
    let url = az.url("v2", &format!("studies/{st}/series/{se}/instances/{sop}"));
    let (status, ct, body) = az
        .get_bytes(
            &url,
            &format!("application/dicom; transfer-syntax={JPEG2000_LOSSLESS}"),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        ct,
        format!("application/dicom; transfer-syntax={JPEG2000_LOSSLESS}")
    );
    let j2k = part10(&body);
    assert_eq!(j2k.meta().transfer_syntax(), JPEG2000_LOSSLESS);
    assert_eq!(
        j2k.element(tags::SOP_INSTANCE_UID)
            .expect("sop")
            .to_str()
            .expect("str")
            .trim_end_matches('\0'),
        sop
    );
    {
        use dicom_pixeldata::PixelDecoder;
        assert_eq!(
            j2k.decode_pixel_data().expect("decode").data(),
            pixels.as_slice(),
            "both frames decode to the stored pixels"
        );
    }
    // Multipart: one part, the same file.
    let (status, ct, multi) = az
        .get_bytes(
            &url,
            &format!(
                r#"multipart/related; type="application/dicom"; transfer-syntax={JPEG2000_LOSSLESS}"#
            ),
        )
        .await;
    assert_eq!(status, 200);
    let parts = split_multipart(&ct, &multi);
    assert_eq!(parts.len(), 1);
    assert!(parts[0].0.contains(JPEG2000_LOSSLESS), "{}", parts[0].0);
    assert_eq!(
        part10(&parts[0].1).meta().transfer_syntax(),
        JPEG2000_LOSSLESS
    );

    // The JPEG 2000 file, stored as a new instance, comes back as Explicit VR Little Endian (asked for,
    // and by default), its frames too.
    let sop2 = uid();
    let mut obj = j2k;
    obj.put(dicom_core::DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        dicom_core::value::PrimitiveValue::from(sop2.as_str()),
    ));
    obj.update_meta(|m| m.media_storage_sop_instance_uid = sop2.clone());
    let mut stored = Vec::new();
    obj.write_all(&mut stored).expect("write");
    let a = az.store("v2", "studies", &[stored]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let url2 = az.url("v2", &format!("studies/{st}/series/{se}/instances/{sop2}"));
    for accept in [
        "application/dicom".to_string(),
        format!("application/dicom; transfer-syntax={}", EXPLICIT_LE),
    ] {
        let (status, ct, body) = az.get_bytes(&url2, &accept).await;
        assert_eq!(status, 200, "{accept}: {}", String::from_utf8_lossy(&body));
        assert!(ct.ends_with(EXPLICIT_LE), "{ct}");
        let ele = part10(&body);
        assert_eq!(ele.meta().transfer_syntax(), EXPLICIT_LE);
        let native = ele
            .element(tags::PIXEL_DATA)
            .expect("pixels")
            .to_bytes()
            .expect("bytes")
            .to_vec();
        assert_eq!(native, pixels, "{accept}");
    }
    let (status, _, frame) = az
        .get_bytes(&format!("{url2}/frames/2"), "application/octet-stream")
        .await;
    assert_eq!(status, 200);
    assert_eq!(frame, pixels[pixels.len() / 2..], "frame 2, decoded");
}

/// Upstream: RetrieveTransactionResourceTests.GivenSupportedAcceptHeaders_WhenRetrieveFrame_ThenServerShouldReturnExpectedContent
/// (FromExplicitVRLittleEndianToJPEG2000Lossless as image/jp2, with no transfer syntax and with
/// "1.2.840.10008.1.2.4.90") and AcceptHeaderHandler's frame descriptors: image/jp2 only in
/// multipart/related, only as JPEG 2000 lossless.
#[tokio::test]
async fn a_frame_as_image_jp2_decodes_back_bit_exact() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let (rows, cols) = (30, 50);
    let (f, pixels) = image_instance((&st, &se, &sop), (rows, cols, 3), (8, 8), EXPLICIT_LE);
    assert_eq!(az.store("v1", "studies", &[f]).await.status, 200);
    let base = az.url(
        "v1",
        &format!("studies/{st}/series/{se}/instances/{sop}/frames"),
    );
    let frame_len = usize::from(rows) * usize::from(cols);
    for accept in [
        r#"multipart/related; type="image/jp2""#.to_string(),
        format!(r#"multipart/related; type="image/jp2"; transfer-syntax={JPEG2000_LOSSLESS}"#),
    ] {
        let (status, ct, body) = az.get_bytes(&format!("{base}/2"), &accept).await;
        assert_eq!(status, 200, "{accept}: {}", String::from_utf8_lossy(&body));
        let parts = split_multipart(&ct, &body);
        assert_eq!(parts.len(), 1, "{accept}");
        let head = parts[0].0.to_ascii_lowercase();
        assert!(head.contains("image/jp2"), "{head}");
        assert!(head.contains(JPEG2000_LOSSLESS), "{head}");
        assert_eq!(&parts[0].1[..2], &[0xFF, 0x4F], "a JPEG 2000 codestream");
        assert_eq!(
            decode_j2k(parts[0].1.clone(), rows, cols, (8, 8)),
            pixels[frame_len..2 * frame_len],
            "{accept}"
        );
    }
    // Two frames: two codestreams, in order.
    let (status, ct, body) = az
        .get_bytes(
            &format!("{base}/3,1"),
            r#"multipart/related; type="image/jp2""#,
        )
        .await;
    assert_eq!(status, 200);
    let parts = split_multipart(&ct, &body);
    assert_eq!(parts.len(), 2);
    assert_eq!(
        decode_j2k(parts[0].1.clone(), rows, cols, (8, 8)),
        pixels[2 * frame_len..]
    );
    assert_eq!(
        decode_j2k(parts[1].1.clone(), rows, cols, (8, 8)),
        pixels[..frame_len]
    );
    // Single-part image/jp2, and image/jp2 in another syntax, are not acceptable.
    for accept in [
        "image/jp2".to_string(),
        r#"multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.1"#.to_string(),
    ] {
        let (status, _, _) = az.get_bytes(&format!("{base}/1"), &accept).await;
        assert_eq!(status, 406, "{accept}");
    }
}

/// Upstream: RetrieveTransactionResourceTests.GivenUnsupportedInternalTransferSyntax_WhenRetrieveInstance_ThenServerShouldReturnNotAcceptable,
/// GivenUnsupportedInternalTransferSyntax_WhenRetrieveInstanceWithOriginalTransferSyntax_ThenServerShouldReturnOriginalContent
/// and GivenUnsupportedTransferSyntax_WhenRetrieveFrameWithOriginalTransferSyntax_ThenOriginalContentReturned
/// — a file stored in a syntax no codec reads (MPEG2) is 406 with Azure's TranscodingException text when
/// a conversion is asked for, and comes back as stored with `*`.
#[tokio::test]
async fn what_cannot_be_transcoded_is_406_in_azures_words() {
    use dicom_core::value::PixelFragmentSequence;
    use dicom_core::{DataElement, Length};
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let base = instance(&st, &se, &sop, &[]);
    let mut obj = dicom_object::OpenFileOptions::new()
        .from_reader(&base[128..])
        .expect("parse")
        .into_inner();
    let fragment = vec![7u8; 64];
    obj.put(DataElement::new_with_len(
        tags::PIXEL_DATA,
        VR::OB,
        Length::UNDEFINED,
        PixelFragmentSequence::new(Vec::<u32>::new(), vec![fragment.clone()]),
    ));
    let mut f = Vec::new();
    obj.with_meta(
        dicom_object::FileMetaTableBuilder::new()
            .transfer_syntax("1.2.840.10008.1.2.4.100")
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
            .media_storage_sop_instance_uid(sop.as_str()),
    )
    .expect("meta")
    .write_all(&mut f)
    .expect("write");
    let a = az.store("v2", "studies", std::slice::from_ref(&f)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let url = az.url("v2", &format!("studies/{st}/series/{se}/instances/{sop}"));
    for accept in [
        "application/dicom; transfer-syntax=1.2.840.10008.1.2.1".to_string(),
        format!("application/dicom; transfer-syntax={JPEG2000_LOSSLESS}"),
    ] {
        let (status, _, body) = az.get_bytes(&url, &accept).await;
        assert_eq!(status, 406, "{accept}");
        assert_eq!(String::from_utf8_lossy(&body), UNSUPPORTED_TRANSCODING);
    }
    let (status, _, body) = az
        .get_bytes(&url, "application/dicom; transfer-syntax=*")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, f, "as stored");
    let (status, _, body) = az
        .get_bytes(&format!("{url}/frames/1"), "application/octet-stream")
        .await;
    assert_eq!(status, 406, "a frame in Explicit VR Little Endian");
    assert_eq!(String::from_utf8_lossy(&body), UNSUPPORTED_TRANSCODING);
    let (status, _, body) = az
        .get_bytes(
            &format!("{url}/frames/1"),
            r#"multipart/related; type="application/octet-stream"; transfer-syntax=*"#,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        body.windows(fragment.len()).any(|w| w == fragment),
        "the stored fragment"
    );
    // Several instances are never transcoded (RetrieveServiceMultiInstanceTranscodingNotSupported).
    let (st2, se2) = (uid(), uid());
    let two = [
        instance(&st2, &se2, &uid(), &[]),
        instance(&st2, &se2, &uid(), &[]),
    ];
    assert_eq!(az.store("v2", "studies", &two).await.status, 200);
    let (status, _, body) = az
        .get_bytes(
            &az.url("v2", &format!("studies/{st2}")),
            &format!(
                r#"multipart/related; type="application/dicom"; transfer-syntax={JPEG2000_LOSSLESS}"#
            ),
        )
        .await;
    assert_eq!(status, 406);
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!(
            "Accept transfer syntax '{JPEG2000_LOSSLESS}' is not supported when multiple instances are matched. Matching instances can be retrieved with their original transfer syntax by specifying 'transfer-syntax=*' in the Accept header."
        )
    );
}

/// Upstream: RetrieveHelpers.CheckFileSize with RetrieveConfiguration.MaxDicomFileSize (100 MB) and
/// RetrieveResourceServiceTests' "above max file size" cases: a file over 100 MB is not transcoded — 406
/// with RetrieveServiceFileTooBig's words — and the service lives on, its memory not grown by it. A
/// transcode that fits is timed and its memory measured.
#[tokio::test]
async fn a_file_over_100_mb_is_not_transcoded_and_the_service_lives_on() {
    let mut az = Azure::start().await;
    // 10240 × 10240 8-bit: 100 MiB of pixels, so the file is just over the limit.
    let (st, se, sop) = ids();
    let (f, _) = image_instance((&st, &se, &sop), (10240, 10240, 1), (8, 8), EXPLICIT_LE);
    assert!(f.len() as u64 > 100 * 1024 * 1024);
    let a = az.store("v2", "studies", &[f]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    az.served.reset_peak();
    let before = az.served.rss_mib();
    let too_big = "Requested DICOM instance size is above the supported limit of 104857600. The entire instance can be retrieved with the original transfer syntax by specifying 'transfer-syntax=*' in the Accept header.";
    let url = az.url("v2", &format!("studies/{st}/series/{se}/instances/{sop}"));
    for (url, accept) in [
        (
            url.clone(),
            format!("application/dicom; transfer-syntax={JPEG2000_LOSSLESS}"),
        ),
        (
            format!("{url}/frames/1"),
            r#"multipart/related; type="image/jp2""#.to_string(),
        ),
    ] {
        let (status, _, body) = az.get_bytes(&url, &accept).await;
        assert_eq!(status, 406, "{accept}");
        assert_eq!(String::from_utf8_lossy(&body), too_big);
    }
    az.served.assert_healthy(before + 16).await;

    // 2048 × 2048 at 16 bits (8 MiB): timed, and its memory measured.
    let (st, se, sop) = ids();
    let (f, pixels) = image_instance((&st, &se, &sop), (2048, 2048, 1), (16, 16), EXPLICIT_LE);
    assert_eq!(az.store("v2", "studies", &[f]).await.status, 200);
    az.served.reset_peak();
    let before = az.served.rss_mib();
    let started = std::time::Instant::now();
    let (status, ct, body) = az
        .get_bytes(
            &az.url(
                "v2",
                &format!("studies/{st}/series/{se}/instances/{sop}/frames/1"),
            ),
            r#"multipart/related; type="image/jp2""#,
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    let parts = split_multipart(&ct, &body);
    let peak = az.served.peak_mib();
    eprintln!(
        "2048x2048x16 frame to JPEG 2000: {} ms, {} bytes, peak RSS {peak} MiB (from {before} MiB)",
        took.as_millis(),
        parts[0].1.len()
    );
    assert_eq!(decode_j2k(parts[0].1.clone(), 2048, 2048, (16, 16)), pixels);
    // An 8 MiB frame: 56 MiB reserved (the frame and its codestream, 10 bytes a sample for the
    // encoder); the process grows by less than that.
    az.served.assert_healthy(before + 56).await;
}

/// Hostile input (no upstream test: fo-dicom would try): a JPEG 2000 instance whose codestream declares
/// 40000 × 40000 pixels where the data set says 8 × 8 is stored (storing does not decode), then asked for
/// in Explicit VR Little Endian, whole and as a frame. Decoding it would take gigabytes; it is refused
/// before it is decoded with Azure's transcoding 406, and the service lives on without growing.
#[tokio::test]
async fn a_jpeg_2000_bomb_is_refused_before_it_is_decoded() {
    use dicom_core::value::PixelFragmentSequence;
    use dicom_core::{DataElement, Length};
    use dicomlab_practice::transcode::{Geometry, encode_frame};
    let mut az = Azure::start().await;
    let (st, se, sop) = ids();
    let g = Geometry {
        rows: 8,
        columns: 8,
        samples: 1,
        bits_allocated: 8,
        bits_stored: 8,
        signed: false,
        planar: false,
    };
    let mut bomb = encode_frame(&[9u8; 64], &g).expect("encode");
    bomb[8..12].copy_from_slice(&40000u32.to_be_bytes());
    bomb[12..16].copy_from_slice(&40000u32.to_be_bytes());
    let base = instance(&st, &se, &sop, &[]);
    let mut obj = dicom_object::OpenFileOptions::new()
        .from_reader(&base[128..])
        .expect("parse")
        .into_inner();
    obj.put(DataElement::new_with_len(
        tags::PIXEL_DATA,
        VR::OB,
        Length::UNDEFINED,
        PixelFragmentSequence::new(Vec::<u32>::new(), vec![bomb]),
    ));
    let mut f = Vec::new();
    obj.with_meta(
        dicom_object::FileMetaTableBuilder::new()
            .transfer_syntax(JPEG2000_LOSSLESS)
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
            .media_storage_sop_instance_uid(sop.as_str()),
    )
    .expect("meta")
    .write_all(&mut f)
    .expect("write");
    let a = az.store("v2", "studies", &[f]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    az.served.reset_peak();
    let before = az.served.rss_mib();
    let url = az.url("v2", &format!("studies/{st}/series/{se}/instances/{sop}"));
    for (url, accept) in [
        (url.clone(), "application/dicom"),
        (format!("{url}/frames/1"), "application/octet-stream"),
    ] {
        let (status, _, body) = az.get_bytes(&url, accept).await;
        assert_eq!(status, 406, "{accept}: {}", String::from_utf8_lossy(&body));
        assert_eq!(String::from_utf8_lossy(&body), UNSUPPORTED_TRANSCODING);
    }
    az.served.assert_healthy(before + 16).await;
}
