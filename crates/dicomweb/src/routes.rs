//! The routes the lab uses, typed: the base URL (its API version and data partition), instance
//! references, what a retrieve fetches and the Accept header each needs, and the extended query tag
//! and operation paths. Nothing else in dicomlab spells a route or an Accept header.

use std::fmt;

/// DICOM JSON (QIDO results, metadata, STOW answers).
pub const DICOM_JSON: &str = "application/dicom+json";
/// Every instance of a study or series, each in its stored transfer syntax (without `*`: 406).
pub const MULTIPART_ANY: &str = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";
/// One instance as a single part, in its stored transfer syntax.
pub const INSTANCE_ANY: &str = "application/dicom; transfer-syntax=*";
/// Frames as raw pixel data, in the stored transfer syntax.
pub const FRAMES_ANY: &str =
    "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*";
/// The JSON of the change feed, extended query tags and operations.
pub const JSON: &str = "application/json";

/// The API version of a base URL (`…/v1`, `…/v2`, `…/v1.0-prerelease`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    V2,
}

/// A base URL: where the DICOM routes are, its version, and the data partition it names, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    raw: String,
    version: Option<ApiVersion>,
    /// Where `/partitions/{name}` starts in `raw`.
    partition_at: Option<usize>,
}

impl BaseUrl {
    /// Reads a base URL as the learner typed it (trailing slashes removed).
    pub fn parse(text: &str) -> BaseUrl {
        let raw = text.trim().trim_end_matches('/').to_string();
        let partition_at = raw.find("/partitions/");
        let versioned = &raw[..partition_at.unwrap_or(raw.len())];
        let last = versioned.rsplit('/').next().unwrap_or("");
        let version = match last {
            "v1" | "v1.0-prerelease" => Some(ApiVersion::V1),
            "v2" => Some(ApiVersion::V2),
            _ => None,
        };
        BaseUrl {
            raw,
            version,
            partition_at,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn version(&self) -> Option<ApiVersion> {
        self.version
    }

    /// v2 pages the change feed by rows skipped, v1 by a sequence cursor.
    pub fn is_v2(&self) -> bool {
        self.version == Some(ApiVersion::V2)
    }

    /// The data partition it names (`…/v1/partitions/{name}`).
    pub fn partition(&self) -> Option<&str> {
        let at = self.partition_at?;
        self.raw[at + "/partitions/".len()..].split('/').next()
    }

    /// The versioned base without the partition: the change feed, tags and operations are the
    /// service's, not a partition's (docs/contract.md §1.2).
    pub fn service(&self) -> &str {
        &self.raw[..self.partition_at.unwrap_or(self.raw.len())]
    }

    /// `{base}/{path}`, at the service's base for service-wide routes.
    pub fn join(&self, path: &str) -> String {
        let path = path.trim_start_matches('/');
        if path.is_empty() {
            return self.raw.clone();
        }
        let service_wide = ["changefeed", "extendedquerytags", "operations"]
            .iter()
            .any(|r| {
                path == *r
                    || path.starts_with(&format!("{r}/"))
                    || path.starts_with(&format!("{r}?"))
            });
        let base = if service_wide {
            self.service()
        } else {
            self.raw.as_str()
        };
        format!("{base}/{path}")
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// An instance, by its three UIDs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceRef {
    pub study: String,
    pub series: String,
    pub sop: String,
}

impl InstanceRef {
    pub fn new(study: &str, series: &str, sop: &str) -> InstanceRef {
        InstanceRef {
            study: study.into(),
            series: series.into(),
            sop: sop.into(),
        }
    }

    /// `studies/{study}/series/{series}/instances/{sop}`
    pub fn path(&self) -> String {
        format!(
            "studies/{}/series/{}/instances/{}",
            self.study, self.series, self.sop
        )
    }

    /// `studies/{study}/series/{series}`
    pub fn series_path(&self) -> String {
        format!("studies/{}/series/{}", self.study, self.series)
    }

    /// `studies/{study}`
    pub fn study_path(&self) -> String {
        format!("studies/{}", self.study)
    }
}

/// What a WADO-RS request fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retrieve {
    /// Every instance of the study (multipart).
    Study(String),
    /// Every instance of a series (multipart).
    Series { study: String, series: String },
    /// One instance, as a single part.
    Instance(InstanceRef),
    /// The metadata of a study (`series` and `sop` empty), a series (`sop` empty) or an instance.
    Metadata(InstanceRef),
    /// A frame's pixels.
    Frame(InstanceRef, u32),
    /// The instance rendered as an image.
    Rendered(InstanceRef, ImageFormat),
}

/// The transfer syntax a retrieve asks for: as stored (`*`), or converted by the service (Azure transcodes
/// one instance, or frames, between these two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Syntax {
    #[default]
    Stored,
    ExplicitLittleEndian,
    Jpeg2000Lossless,
}

impl Syntax {
    pub const ALL: [Syntax; 3] = [
        Syntax::Stored,
        Syntax::ExplicitLittleEndian,
        Syntax::Jpeg2000Lossless,
    ];

    /// `*` or the UID.
    pub fn uid(self) -> &'static str {
        match self {
            Syntax::Stored => "*",
            Syntax::ExplicitLittleEndian => "1.2.840.10008.1.2.1",
            Syntax::Jpeg2000Lossless => "1.2.840.10008.1.2.4.90",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Syntax::Stored => "as stored",
            Syntax::ExplicitLittleEndian => "Explicit VR Little Endian",
            Syntax::Jpeg2000Lossless => "JPEG 2000 lossless",
        }
    }

    /// The next one (a key cycles through them).
    pub fn next(self) -> Syntax {
        let i = Self::ALL.iter().position(|s| *s == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }
}

/// The image a rendered retrieve asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

impl Retrieve {
    /// The path under the base URL.
    pub fn path(&self) -> String {
        match self {
            Retrieve::Study(s) => format!("studies/{s}"),
            Retrieve::Series { study, series } => format!("studies/{study}/series/{series}"),
            Retrieve::Instance(i) => i.path(),
            Retrieve::Metadata(i) if i.series.is_empty() => format!("{}/metadata", i.study_path()),
            Retrieve::Metadata(i) if i.sop.is_empty() => format!("{}/metadata", i.series_path()),
            Retrieve::Metadata(i) => format!("{}/metadata", i.path()),
            Retrieve::Frame(i, n) => format!("{}/frames/{n}", i.path()),
            Retrieve::Rendered(i, _) => format!("{}/rendered", i.path()),
        }
    }

    /// The Accept header it needs.
    pub fn accept(&self) -> &'static str {
        match self {
            Retrieve::Study(_) | Retrieve::Series { .. } => MULTIPART_ANY,
            Retrieve::Instance(_) => INSTANCE_ANY,
            Retrieve::Metadata(_) => DICOM_JSON,
            Retrieve::Frame(..) => FRAMES_ANY,
            Retrieve::Rendered(_, ImageFormat::Png) => "image/png",
            Retrieve::Rendered(_, ImageFormat::Jpeg) => "image/jpeg",
        }
    }

    /// The Accept header asking for `syntax`: frames in JPEG 2000 come as `image/jp2` parts. Metadata
    /// and rendered images have no transfer syntax.
    pub fn accept_as(&self, syntax: Syntax) -> String {
        let ts = syntax.uid();
        match (self, syntax) {
            (_, Syntax::Stored) | (Retrieve::Metadata(_) | Retrieve::Rendered(..), _) => {
                self.accept().to_string()
            }
            (Retrieve::Study(_) | Retrieve::Series { .. }, _) => {
                format!("multipart/related; type=\"application/dicom\"; transfer-syntax={ts}")
            }
            (Retrieve::Instance(_), _) => format!("application/dicom; transfer-syntax={ts}"),
            (Retrieve::Frame(..), Syntax::Jpeg2000Lossless) => {
                format!("multipart/related; type=\"image/jp2\"; transfer-syntax={ts}")
            }
            (Retrieve::Frame(..), _) => format!(
                "multipart/related; type=\"application/octet-stream\"; transfer-syntax={ts}"
            ),
        }
    }

    /// Whether the answer is a multipart body (saved a file per part).
    pub fn multipart(&self) -> bool {
        matches!(
            self,
            Retrieve::Study(_) | Retrieve::Series { .. } | Retrieve::Frame(..)
        )
    }
}

/// The extended query tag routes.
pub mod tags {
    /// `extendedquerytags?limit=&offset=`
    pub fn list(limit: u32, offset: u32) -> String {
        format!("extendedquerytags?limit={limit}&offset={offset}")
    }
    /// `extendedquerytags` (POST adds)
    pub fn all() -> &'static str {
        "extendedquerytags"
    }
    /// `extendedquerytags/{path}` (GET, PATCH, DELETE)
    pub fn one(path: &str) -> String {
        format!("extendedquerytags/{path}")
    }
    /// `extendedquerytags/{path}/errors`
    pub fn errors(path: &str) -> String {
        format!("extendedquerytags/{path}/errors")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retrieve_asks_for_a_transfer_syntax() {
        let i = InstanceRef::new("1.2", "1.2.3", "1.2.3.4");
        assert_eq!(
            Retrieve::Instance(i.clone()).accept_as(Syntax::Jpeg2000Lossless),
            "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.90"
        );
        assert_eq!(
            Retrieve::Frame(i.clone(), 1).accept_as(Syntax::Jpeg2000Lossless),
            "multipart/related; type=\"image/jp2\"; transfer-syntax=1.2.840.10008.1.2.4.90"
        );
        assert_eq!(
            Retrieve::Frame(i.clone(), 1).accept_as(Syntax::ExplicitLittleEndian),
            "multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.1"
        );
        let study = Retrieve::Study("1.2".into());
        assert_eq!(study.accept_as(Syntax::Stored), study.accept());
        let meta = Retrieve::Metadata(i);
        assert_eq!(meta.accept_as(Syntax::Jpeg2000Lossless), meta.accept());
        assert_eq!(Syntax::Jpeg2000Lossless.next(), Syntax::Stored);
    }

    #[test]
    fn base_urls_know_their_version_and_partition() {
        let b =
            BaseUrl::parse("https://ws-dicom.dicom.azurehealthcareapis.com/v1/partitions/lab-a/");
        assert_eq!(b.version(), Some(ApiVersion::V1));
        assert_eq!(b.partition(), Some("lab-a"));
        assert_eq!(
            b.service(),
            "https://ws-dicom.dicom.azurehealthcareapis.com/v1"
        );
        assert_eq!(b.join("studies"), format!("{b}/studies"));
        assert_eq!(
            b.join("changefeed?offset=0"),
            "https://ws-dicom.dicom.azurehealthcareapis.com/v1/changefeed?offset=0"
        );
        assert!(BaseUrl::parse("http://h/v2").is_v2());
        assert_eq!(
            BaseUrl::parse("http://orthanc:8042/dicom-web").version(),
            None
        );
        assert_eq!(
            BaseUrl::parse("http://h/v1.0-prerelease").version(),
            Some(ApiVersion::V1)
        );
    }

    #[test]
    fn retrieves_know_their_path_and_accept() {
        let i = InstanceRef::new("1", "2", "3");
        assert_eq!(Retrieve::Study("1".into()).path(), "studies/1");
        assert_eq!(Retrieve::Study("1".into()).accept(), MULTIPART_ANY);
        assert_eq!(Retrieve::Instance(i.clone()).accept(), INSTANCE_ANY);
        assert_eq!(
            Retrieve::Metadata(InstanceRef::new("1", "", "")).path(),
            "studies/1/metadata"
        );
        assert_eq!(
            Retrieve::Metadata(InstanceRef::new("1", "2", "")).path(),
            "studies/1/series/2/metadata"
        );
        assert_eq!(
            Retrieve::Metadata(i.clone()).path(),
            "studies/1/series/2/instances/3/metadata"
        );
        assert_eq!(
            Retrieve::Frame(i.clone(), 1).path(),
            "studies/1/series/2/instances/3/frames/1"
        );
        assert_eq!(
            Retrieve::Rendered(i, ImageFormat::Png).accept(),
            "image/png"
        );
        assert_eq!(tags::one("PatientSex"), "extendedquerytags/PatientSex");
    }
}
