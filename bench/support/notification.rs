//! What the benches push as notifications.

/// The preimage of a realistic `invoice_creation`
/// (tests/fixtures/notifications/invoice_creation.json).
pub const PREIMAGE: &str = "b3b01aebcaec63b025af22a3f829c1c8a906f3e57043285481dfdef21d8b5deb";
