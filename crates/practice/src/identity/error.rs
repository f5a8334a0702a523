//! Why the identity endpoint could not do something.

use super::redirect_uri::RedirectUriError;
use crate::db::DbError;

/// Why the identity endpoint could not do something.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    RedirectUri(#[from] RedirectUriError),
    #[error("the practice tenant's signing key could not be made or used")]
    Key,
}

impl From<rusqlite::Error> for IdentityError {
    fn from(e: rusqlite::Error) -> Self {
        IdentityError::Db(DbError::Sqlite(e))
    }
}
