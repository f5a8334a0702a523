//! Value checks per VR, in the spirit of fo-dicom's validators that the real service runs on indexed
//! attributes (v1) and on every attribute (v2). Messages follow the `DICOM100: (gggg,eeee) - Content "…"
//! does not validate VR XX: …` form of docs/contract.md §3.4.

use dicom_core::VR;

/// Checks one string value (a single component of a multi-valued element) against its VR.
/// Returns the reason when it does not validate.
pub fn check_str(vr: VR, value: &str) -> Result<(), String> {
    let v = value.trim_end_matches(['\0', ' ']);
    let max = |n: usize| -> Result<(), String> {
        if v.chars().count() > n {
            Err(format!("value length exceeds maximum length of {n}"))
        } else {
            Ok(())
        }
    };
    let no_control = || -> Result<(), String> {
        if v.chars().any(|c| c.is_control() && c != '\u{1b}') {
            Err("value contains invalid character".into())
        } else {
            Ok(())
        }
    };
    match vr {
        VR::AE => {
            max(16)?;
            no_control()
        }
        VR::AS => {
            let b = v.as_bytes();
            valid(
                v.is_empty()
                    || (b.len() == 4
                        && b[..3].iter().all(u8::is_ascii_digit)
                        && b"DWMY".contains(&b[3])),
                "value does not have pattern 000[D|W|M|Y]",
            )
        }
        VR::CS => {
            max(16)?;
            valid(
                v.bytes().all(|b| {
                    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'_'
                }),
                "value contains invalid character",
            )
        }
        VR::DA => valid(
            v.is_empty() || is_valid_date(v),
            "one of the date values does not match the pattern YYYYMMDD",
        ),
        VR::DS => {
            max(16)?;
            valid(
                v.is_empty() || v.trim().parse::<f64>().is_ok(),
                "value is not a valid decimal string",
            )
        }
        VR::DT => valid(
            v.is_empty() || is_valid_datetime(v),
            "value does not match the pattern YYYYMMDDHHMMSS.FFFFFF&ZZXX",
        ),
        VR::IS => {
            max(12)?;
            valid(
                v.is_empty()
                    || v.trim()
                        .parse::<i64>()
                        .is_ok_and(|n| i32::try_from(n).is_ok()),
                "value is not a valid integer string",
            )
        }
        VR::LO => {
            max(64)?;
            no_control()
        }
        VR::SH => {
            max(16)?;
            no_control()
        }
        VR::PN => {
            for group in v.split('=') {
                if group.chars().count() > 64 {
                    return Err("value length exceeds maximum length of 64".into());
                }
                if group.split('^').count() > 5 {
                    return Err("value contains too many components".into());
                }
            }
            no_control()
        }
        VR::TM => valid(
            v.is_empty() || is_valid_time(v),
            "value does not match the pattern HHMMSS.FFFFFF",
        ),
        VR::UI => valid(
            v.is_empty() || super::is_valid_uid(v),
            "DICOM Identifier is invalid",
        ),
        VR::LT => max(10240),
        VR::ST => max(1024),
        _ => Ok(()),
    }
}

/// `Ok` when `ok`, else the reason `why`.
fn valid(ok: bool, why: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(why.into()) }
}

/// `yyyyMMdd`, a real calendar date.
pub fn is_valid_date(v: &str) -> bool {
    if v.len() != 8 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (
        v[..4].parse::<u32>(),
        v[4..6].parse::<u32>(),
        v[6..].parse::<u32>(),
    ) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// `HH[MM[SS[.F{1,6}]]]`.
pub fn is_valid_time(v: &str) -> bool {
    let (main, frac) = match v.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (v, None),
    };
    if !matches!(main.len(), 2 | 4 | 6) || !main.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let part = |i: usize| main.get(i..i + 2).map(|s| s.parse::<u32>().unwrap_or(99));
    if part(0).is_some_and(|h| h > 23)
        || part(2).is_some_and(|m| m > 59)
        || part(4).is_some_and(|s| s > 60)
    {
        return false;
    }
    match frac {
        Some(f) => {
            main.len() == 6 && (1..=6).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit())
        }
        None => true,
    }
}

/// `yyyy[MM[dd[HH[mm[ss[.ffffff]]]]]][&ZZXX]` (docs/contract.md §5.3 for the query form, which refuses an offset).
pub fn is_valid_datetime(v: &str) -> bool {
    let (body, zone) = match v.find(['+', '-']) {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    if let Some(z) = zone
        && (z.len() != 4 || !z.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let (main, frac) = match body.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (body, None),
    };
    if !matches!(main.len(), 4 | 6 | 8 | 10 | 12 | 14) || !main.bytes().all(|b| b.is_ascii_digit())
    {
        return false;
    }
    if main.len() >= 8 && !is_valid_date(&main[..8]) {
        return false;
    }
    if main.len() > 8 && !is_valid_time(&main[8..]) {
        return false;
    }
    frac.is_none_or(|f| {
        main.len() == 14 && (1..=6).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit())
    })
}

/// VRs an extended query tag may have (docs/contract.md §8.2).
pub const EQT_VRS: &[VR] = &[
    VR::AE,
    VR::AS,
    VR::CS,
    VR::DA,
    VR::DS,
    VR::DT,
    VR::FD,
    VR::FL,
    VR::IS,
    VR::LO,
    VR::PN,
    VR::SH,
    VR::SL,
    VR::SS,
    VR::TM,
    VR::UI,
    VR::UL,
    VR::US,
];

/// VRs whose values are bulk data: never in metadata (docs/contract.md §4.6).
pub fn is_bulk(vr: VR) -> bool {
    matches!(
        vr,
        VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::UN
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(is_valid_date("20200922"));
        assert!(is_valid_date("20240229"));
        assert!(!is_valid_date("20230229"));
        assert!(!is_valid_date("NotAValidStudyDate"));
        assert!(check_str(VR::DA, "NotAValidStudyDate").is_err());
        assert!(check_str(VR::DA, "").is_ok());
    }

    #[test]
    fn code_strings() {
        assert!(check_str(VR::CS, "OT").is_ok());
        assert!(check_str(VR::CS, "123456789ABCDEFGHIJK").is_err());
        assert!(check_str(VR::CS, "lower").is_err());
    }

    #[test]
    fn times_and_datetimes() {
        assert!(is_valid_time("120000"));
        assert!(is_valid_time("1200"));
        assert!(is_valid_time("120000.123456"));
        assert!(!is_valid_time("250000"));
        assert!(is_valid_datetime("20200922120000"));
        assert!(is_valid_datetime("2020"));
        assert!(is_valid_datetime("20200922120000+0100"));
        assert!(!is_valid_datetime("2020-09-22"));
    }

    #[test]
    fn numbers_and_ages() {
        assert!(check_str(VR::IS, "0003").is_ok());
        assert!(check_str(VR::IS, "abc").is_err());
        assert!(check_str(VR::DS, "1.5").is_ok());
        assert!(check_str(VR::AS, "024Y").is_ok());
        assert!(check_str(VR::AS, "24Y").is_err());
    }
}
