//! What became of each instance of a STOW request, and the failure and warning reasons that say why.

/// Failure and warning reasons of docs/contract.md §3.5.
pub(crate) mod reason {
    pub(crate) const PROCESSING_FAILURE: u16 = 272;
    pub(crate) const VALIDATION_FAILED: u16 = 43264;
    pub(crate) const SOP_INSTANCE_ALREADY_EXISTS: u16 = 45070;
    pub(crate) const DATASET_DOES_NOT_MATCH_SOP_CLASS: u16 = 45063;
    pub(crate) const ATTRIBUTES_DROPPED: u16 = 1;
}

/// What happened to one instance of a request.
#[derive(Debug)]
pub(super) enum Outcome {
    Stored {
        class: String,
        sop: String,
        url: String,
        warning: Option<u16>,
        comments: Vec<String>,
    },
    Failed {
        reason: u16,
        class: Option<String>,
        sop: Option<String>,
        comments: Vec<String>,
    },
}
