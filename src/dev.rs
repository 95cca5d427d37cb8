//! `podterm dev`: the dev cluster plus the gateway on loopback (placeholder).

use crate::config::StartError;

/// `podterm dev`.
pub async fn main() -> Result<(), StartError> {
    Err(StartError::Fatal("`dev` is not built yet".into()))
}
