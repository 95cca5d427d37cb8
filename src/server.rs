//! The gateway's accept loop (placeholder until the gateway lands).

use crate::config::StartError;

/// `podterm serve`.
pub async fn main() -> Result<(), StartError> {
    Err(StartError::Fatal("`serve` is not built yet".into()))
}
