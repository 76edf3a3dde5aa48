//! Signing secrets and signatures as the Standard Webhooks specification defines them
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>):
//! a secret is `whsec_` followed by the base64 of 32 random bytes; a signature is
//! `v1,<base64 of HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>`, the key being
//! the secret's decoded bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::HeaderValue;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// How every secret starts.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a secret (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The system source fails only if the kernel has none to give: nothing works then.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random source");
    bytes
}

/// A fresh secret, `whsec_<base64>`.
pub fn new_secret() -> String {
    format!(
        "{SECRET_PREFIX}{}",
        STANDARD.encode(random_bytes::<SECRET_BYTES>())
    )
}

/// The HMAC key of a `whsec_<base64>` secret; `None` if it is not one.
pub fn key_of(secret: &str) -> Option<hmac::Key> {
    let encoded = secret.strip_prefix(SECRET_PREFIX)?;
    let bytes = STANDARD.decode(encoded).ok()?;
    (!bytes.is_empty()).then(|| hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

/// The `webhook-signature` header's value for one attempt: `v1,` and the base64 of the
/// HMAC. `timestamp` is the `webhook-timestamp` header's text.
pub fn sign(key: &hmac::Key, id: &str, timestamp: &[u8], body: &[u8]) -> HeaderValue {
    let mut context = hmac::Context::with_key(key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp);
    context.update(b".");
    context.update(body);
    let text = format!("v1,{}", STANDARD.encode(context.sign().as_ref()));
    HeaderValue::try_from(text).expect("base64 text is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_base64_of_32_bytes_and_differ() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        let encoded = a.strip_prefix(SECRET_PREFIX).expect("whsec_ prefix");
        assert_eq!(STANDARD.decode(encoded).unwrap().len(), SECRET_BYTES);
        assert!(key_of(&a).is_some());
        assert!(key_of("whsec_").is_none());
        assert!(key_of("nope").is_none());
    }

    /// The example of the reference libraries' test suites (the Python and JavaScript
    /// `standardwebhooks` packages).
    #[test]
    fn signs_like_the_reference_libraries() {
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            b"1614265330",
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
