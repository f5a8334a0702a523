//! Unit tests of the request side of STOW-RS.

use super::*;

#[test]
fn the_warning_agent_is_the_host_without_its_port() {
    assert_eq!(warn_agent("127.0.0.1:18742"), "127.0.0.1:");
    assert_eq!(warn_agent("dicom.example.org"), "dicom.example.org:");
    assert_eq!(warn_agent("[::1]:8042"), "[::1]:");
    assert_eq!(warn_agent(""), "");
}
