//! Who may write to and read from the logs: write admission per log, authenticated reads, and
//! the bearer credentials both accept.

pub mod admission;
pub mod credentials;
pub mod read;

pub use admission::{Admission, AdmissionConfig};
pub use credentials::{CredentialConfig, Credentials, Principal, Refusal};
pub use read::{ReadAccess, ReadAccessConfig, protect_reads};
