//! A lab's dataset: the instances it stores, each with a name (`red`), the file the learner stores, how
//! to make that file when the learner has none (a built-in generator, or a file beside the lab), the
//! UIDs the checks look for and the attributes searches and questions may name. Lab text uses them as
//! placeholders: `{red}` (its SOP Instance UID), `{red.study}`, `{red.series}`, `{red.file}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use dicomlab_dicom::samples::{self, ShapeSpec};
use dicomlab_dicomweb::InstanceRef;

/// The instances of a lab.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    #[serde(rename = "instance", default)]
    pub instances: Vec<Instance>,
    /// Where files named by the dataset are (the lab file's folder).
    #[serde(skip)]
    folder: Option<PathBuf>,
}

/// One instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// The name lab text uses: letters, digits, `-` and `_`.
    pub name: String,
    /// How the lab calls it ("red triangle"); default: the name.
    #[serde(default)]
    pub title: String,
    /// The file name the learner stores (`red-triangle.dcm`).
    pub file: String,
    /// How to make the file: a built-in picture (`red-triangle`, `green-square`, `blue-circle`) or a
    /// drawn shape (`{ shape = "star", color = "#f0c000" }`). Without one, `file` must be beside the lab.
    #[serde(default)]
    pub generator: Option<Generator>,
    pub study: String,
    pub series: String,
    pub sop: String,
    /// Attributes (keyword → value) the instance holds: a shape generator writes them, questions and
    /// searches may name them.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// A built-in way to make an instance's file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Generator {
    Named(String),
    Shape(ShapeSpec),
}

/// A dataset problem: the instance it is about, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetError {
    pub name: String,
    pub message: String,
}

impl Dataset {
    /// Files named by the dataset are looked for in `dir`.
    pub fn set_folder(&mut self, dir: &Path) {
        self.folder = Some(dir.to_path_buf());
    }

    pub fn instance(&self, name: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.instances.iter().map(|i| i.name.as_str()).collect()
    }

    /// The instance with this SOP Instance UID.
    pub fn by_sop(&self, sop: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.sop == sop)
    }

    /// The instances in the study / series of `of` at `level`, `of` included.
    pub fn in_scope(&self, of: &Instance, level: dicomlab_dicom::Level) -> Vec<&Instance> {
        use dicomlab_dicom::Level;
        self.instances
            .iter()
            .filter(|i| match level {
                Level::Study => i.study == of.study,
                Level::Series => i.study == of.study && i.series == of.series,
                Level::Instance => i.sop == of.sop,
            })
            .collect()
    }

    /// The value of a placeholder's name (`red`, `red.study`, `red.series`, `red.file`), if the dataset has it.
    pub fn placeholder(&self, p: &str) -> Option<String> {
        let (name, field) = p.split_once('.').unwrap_or((p, "sop"));
        let i = self.instance(name)?;
        Some(match field {
            "sop" => i.sop.clone(),
            "study" => i.study.clone(),
            "series" => i.series.clone(),
            "file" => i.file.clone(),
            "title" => i.display().to_string(),
            _ => return None,
        })
    }

    /// Every placeholder of the dataset with its value (`{red}` → UID…).
    pub fn values(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for i in &self.instances {
            for (field, v) in [
                ("", i.sop.as_str()),
                (".study", i.study.as_str()),
                (".series", i.series.as_str()),
                (".file", i.file.as_str()),
                (".title", i.display()),
            ] {
                m.insert(format!("{{{}{field}}}", i.name), v.to_string());
            }
        }
        m
    }

    /// `text` with the dataset's placeholders filled (others left as they are).
    pub fn fill(&self, text: &str) -> String {
        let mut out = text.to_string();
        // Longest first: `{red.study}` before `{red}`.
        let mut values: Vec<(String, String)> = self.values().into_iter().collect();
        values.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        for (k, v) in values {
            out = out.replace(&k, &v);
        }
        out
    }

    /// Checks names, UIDs and generators.
    pub fn validate(&self) -> Result<(), DatasetError> {
        let err = |i: &Instance, message: String| DatasetError {
            name: i.name.clone(),
            message,
        };
        let mut seen = std::collections::HashSet::new();
        let (mut files, mut sops) = (
            std::collections::HashSet::new(),
            std::collections::HashSet::new(),
        );
        for i in &self.instances {
            if i.name.is_empty()
                || !i
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(err(
                    i,
                    format!(
                        "the instance name '{}' may hold only letters, digits, - and _",
                        i.name
                    ),
                ));
            }
            if !seen.insert(i.name.as_str()) {
                return Err(err(
                    i,
                    format!("the instance name '{}' is used twice", i.name),
                ));
            }
            for (uid, what) in [(&i.study, "study"), (&i.series, "series"), (&i.sop, "sop")] {
                if !dicomlab_dicom::uid::is_valid_uid(uid) {
                    return Err(err(
                        i,
                        format!(
                            "the {what} UID '{uid}' of '{}' is not a valid UID (digits and dots, at most 64)",
                            i.name
                        ),
                    ));
                }
            }
            // Two instances in one file, or one SOP Instance UID twice: the second store would
            // overwrite the first, or answer 409 45070.
            if !files.insert(i.file.to_ascii_lowercase()) {
                return Err(err(
                    i,
                    format!(
                        "the file name '{}' of '{}' is used by another instance",
                        i.file, i.name
                    ),
                ));
            }
            if !sops.insert(i.sop.as_str()) {
                return Err(err(
                    i,
                    format!(
                        "the SOP Instance UID of '{}' is another instance's too",
                        i.name
                    ),
                ));
            }
            if i.file.is_empty() || i.file.contains(['/', '\\']) {
                return Err(err(
                    i,
                    format!("the file of '{}' must be a plain file name", i.name),
                ));
            }
            match &i.generator {
                Some(Generator::Named(n)) if samples::Sample::by_name(n).is_none() => {
                    return Err(err(
                        i,
                        format!(
                            "'{n}' is not a built-in generator (red-triangle, green-square, blue-circle, or a shape table)"
                        ),
                    ));
                }
                Some(Generator::Shape(s)) => s.validate().map_err(|m| err(i, m))?,
                _ => {}
            }
            for k in i.attributes.keys() {
                if dicomlab_dicom::tags::resolve(k).is_none() {
                    return Err(err(
                        i,
                        format!(
                            "'{k}' (an attribute of '{}') is not a DICOM keyword",
                            i.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The instances' files: from `dir` when given (the official download), else made into `out`
    /// (generated, or copied from beside the lab) when not there yet. Blocking: call on a blocking thread.
    pub fn files(
        &self,
        dir: Option<&Path>,
        out: &Path,
    ) -> Result<Vec<PathBuf>, samples::SampleError> {
        if let Some(d) = dir {
            return Ok(self.instances.iter().map(|i| d.join(&i.file)).collect());
        }
        self.write_into(out, false)
    }

    /// Writes every instance's file into `out` (created when missing), replacing what is there under
    /// the same names (`dicomlab samples`). Blocking.
    pub fn write_all(&self, out: &Path) -> Result<Vec<PathBuf>, samples::SampleError> {
        self.write_into(out, true)
    }

    fn write_into(&self, out: &Path, replace: bool) -> Result<Vec<PathBuf>, samples::SampleError> {
        let mut paths = Vec::new();
        for i in &self.instances {
            let target = out.join(&i.file);
            if replace || !target.exists() {
                self.write_instance(i, &target)?;
            }
            paths.push(target);
        }
        Ok(paths)
    }

    /// Writes an instance's file at `target`: drawn by its generator, or copied from beside the lab.
    fn write_instance(&self, i: &Instance, target: &Path) -> Result<(), samples::SampleError> {
        let bytes = match &i.generator {
            Some(Generator::Named(n)) => {
                let Some(s) = samples::Sample::by_name(n) else {
                    return Err(samples::SampleError::Io {
                        path: target.to_path_buf(),
                        source: std::io::Error::other(format!("no generator '{n}'")),
                    });
                };
                // Streamed to the file: the drawn frame is the only copy in memory.
                return samples::write_atomically_with(target, |mut w| {
                    s.write_with(&i.study, &i.series, &i.sop, &mut w)
                });
            }
            Some(Generator::Shape(spec)) => {
                samples::shape_instance(spec, &i.study, &i.series, &i.sop, &i.attributes)?
            }
            None => {
                let src = self
                    .folder
                    .as_ref()
                    .map_or_else(|| PathBuf::from(&i.file), |f| f.join(&i.file));
                std::fs::read(&src).map_err(|source| samples::SampleError::Io {
                    path: src.clone(),
                    source,
                })?
            }
        };
        samples::write_atomically(target, &bytes)
    }
}

impl Instance {
    /// How the lab names it.
    pub fn display(&self) -> &str {
        if self.title.is_empty() {
            &self.name
        } else {
            &self.title
        }
    }

    /// Its three UIDs, for the client's typed calls.
    pub fn reference(&self) -> InstanceRef {
        InstanceRef::new(&self.study, &self.series, &self.sop)
    }

    /// Its study (`level` Study), series (Series) or itself (Instance), as the client deletes or reads
    /// them: the UIDs below the level left empty.
    pub fn at(&self, level: dicomlab_dicom::Level) -> InstanceRef {
        use dicomlab_dicom::Level;
        match level {
            Level::Study => InstanceRef::new(&self.study, "", ""),
            Level::Series => InstanceRef::new(&self.study, &self.series, ""),
            Level::Instance => self.reference(),
        }
    }

    /// `studies/{study}/series/{series}/instances/{sop}`
    pub fn path(&self) -> String {
        self.reference().path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds() -> Dataset {
        let mut d: Dataset = toml::from_str(
            r##"
[[instance]]
name = "a"
title = "first"
file = "a.dcm"
generator = { shape = "star", color = "#f0c000", rows = 32, columns = 48 }
study = "1.2.3"
series = "1.2.3.4"
sop = "1.2.3.4.5"
attributes = { PatientName = "Lab^Two", PatientID = "L2" }
[[instance]]
name = "b"
file = "b.dcm"
generator = "blue-circle"
study = "1.2.3"
series = "1.2.3.9"
sop = "1.2.3.9.1"
"##,
        )
        .expect("parses");
        d.set_folder(Path::new("."));
        d
    }

    #[test]
    fn placeholders_fill_longest_first() {
        let d = ds();
        assert_eq!(
            d.fill("studies/{a.study}/series/{a.series}/instances/{a}"),
            "studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5"
        );
        assert_eq!(d.placeholder("b.file").as_deref(), Some("b.dcm"));
        assert_eq!(d.placeholder("c"), None);
        assert!(d.validate().is_ok());
        let a = d.instance("a").expect("a");
        assert_eq!(d.in_scope(a, dicomlab_dicom::Level::Study).len(), 2);
        assert_eq!(d.in_scope(a, dicomlab_dicom::Level::Series).len(), 1);
    }

    #[test]
    fn generators_write_the_declared_uids_and_attributes() {
        let d = ds();
        let dir = tempfile::tempdir().expect("dir");
        let files = d.files(None, dir.path()).expect("files");
        assert_eq!(files.len(), 2);
        for (f, i) in files.iter().zip(&d.instances) {
            let obj = dicom_object::open_file(f).expect("a DICOM file");
            let sop = obj
                .element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
                .expect("sop")
                .to_str()
                .expect("str");
            assert_eq!(sop.trim_end_matches('\0'), i.sop);
        }
        let a = dicom_object::open_file(&files[0]).expect("a");
        let name = a
            .element(dicom_dictionary_std::tags::PATIENT_NAME)
            .expect("name")
            .to_str()
            .expect("str");
        assert_eq!(name.trim(), "Lab^Two");
    }

    #[test]
    fn bad_datasets_say_which_instance() {
        let mut d = ds();
        d.instances[1].sop = "1.2.abc".into();
        assert_eq!(d.validate().expect_err("uid").name, "b");
        let mut d = ds();
        d.instances[0]
            .attributes
            .insert("NotAKeyword".into(), "x".into());
        assert!(
            d.validate()
                .expect_err("kw")
                .message
                .contains("NotAKeyword")
        );
        let mut d = ds();
        d.instances[1].generator = Some(Generator::Named("purple-hexagon".into()));
        assert!(
            d.validate()
                .expect_err("gen")
                .message
                .contains("purple-hexagon")
        );
    }
}
