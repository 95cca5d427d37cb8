//! The embedded dev cluster (placeholder).

use crate::config::StartError;

/// `podterm dev-cluster`.
pub async fn main() -> Result<(), StartError> {
    Err(StartError::Fatal("`dev-cluster` is not built yet".into()))
}
