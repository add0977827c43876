//! Offloaded payloads: the PayloadStore seam in memory, and Azure Blob storage on Azurite (feature azure-blob).
//!
//! One test binary for the area; each file below is a module.

#[cfg(feature = "azure-blob")]
mod azure_blob;
mod offload;
