//! The SSH server's host key: made once (ed25519, 0600) in the classroom folder, read at every start;
//! and why the server could not start ([`SshError`]).

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use russh::keys::PrivateKey;

/// Why the SSH server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot listen for SSH on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("the SSH host key {path}: {why}")]
    HostKey { path: String, why: String },
}

/// Loads the host key from `path`, or makes one (ed25519, 0600).
pub(crate) fn host_key(path: &Path) -> Result<PrivateKey, SshError> {
    let err = |why: String| SshError::HostKey {
        path: path.display().to_string(),
        why,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => PrivateKey::from_openssh(text.as_bytes()).map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            let key = PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
                &seed,
            ));
            let text = key
                .to_openssh(russh::keys::ssh_key::LineEnding::LF)
                .map_err(|e| err(e.to_string()))?;
            crate::folder::write_private(path, text.as_bytes()).map_err(|e| err(e.to_string()))?;
            tracing::info!(path = %path.display(), "made the SSH host key");
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::HashAlg;

    #[test]
    fn the_host_key_is_made_once_and_private() {
        let t = tempfile::tempdir().expect("tmp");
        let path = t.path().join("host_key");
        let a = host_key(&path).expect("made");
        let b = host_key(&path).expect("read");
        assert_eq!(
            a.fingerprint(HashAlg::Sha256).to_string(),
            b.fingerprint(HashAlg::Sha256).to_string()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
