//! Certificate authority (Fulcio-compatible API).
