//! Transparency logs: the Merkle log engine, Rekor v1 API and the CT log API.
