//! Property tests of sealing: any claims round-trip, any alteration is
//! refused before the claims are looked at, and keys, owners, targets and
//! expiry are enforced for any values.
//!
//! Whatever [`OpenError`] a token gets, the layer answers it with the same
//! `404` (one code path in `layer.rs`); these tests pin down which errors an
//! altered token may get: only those decided before decryption succeeds.
//!
//! Case counts are fixed and small (the file runs in about two seconds in a
//! debug build); failures are not persisted: a failing input is printed, shrunk,
//! and belongs in a named unit test once understood.

use std::{net::IpAddr, sync::Arc, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use mcp_guard_layers::identity::AuthMethod;
use proptest::{prelude::*, test_runner::Config};

use super::{EncodeError, MAX_TOKEN_LEN, OpenError, Owner, SealError, Sealer, SessionClaims, seal::unix_now};
use crate::config::{SealingKey, SessionSealing};

fn sealer(keys: &[[u8; 32]], target: &str) -> Sealer {
    let sealing = SessionSealing {
        keys: keys.iter().map(|k| SealingKey(*k)).collect(),
        ttl: Duration::from_secs(3600),
        replica_id: None,
    };
    Sealer::new(&sealing, target).expect("at least one key")
}

fn owner() -> impl Strategy<Value = Owner> {
    let method = prop_oneof![Just(AuthMethod::ApiKey), Just(AuthMethod::Bearer)];
    prop_oneof![
        Just(Owner::Unknown),
        any::<[u8; 4]>().prop_map(|o| Owner::Ip(IpAddr::from(o))),
        any::<[u8; 16]>().prop_map(|o| Owner::Ip(IpAddr::from(o))),
        // Any text, up to 300 characters: subjects over 255 bytes become digests.
        (method, ".{0,300}").prop_map(|(method, subject)| Owner::principal(method, &Arc::from(subject))),
    ]
}

/// Session ids: mostly visible ASCII of any length up to past what fits a
/// token, sometimes any text at all (rarely a valid id).
fn session_id() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[!-~]{1,800}", 1 => ".{0,40}"]
}

/// Sealable claims for `s`, with the session id short enough to fit.
fn claims(s: &Sealer) -> impl Strategy<Value = SessionClaims> + use<> {
    let target: Arc<str> = s.target().into();
    ("[!-~]{1,200}", owner(), 1u64..).prop_map(move |(session, owner, expires)| SessionClaims {
        upstream_session: session.into(),
        owner,
        target: Arc::clone(&target),
        expires,
    })
}

/// Errors that mean "not a token from this sealer's keys": decided before any
/// claim (expiry, target, owner) is read.
fn rejected_unread(result: Result<SessionClaims, OpenError>) -> bool {
    matches!(result, Err(OpenError::Malformed | OpenError::UnknownKey | OpenError::Forged))
}

proptest! {
    #![proptest_config(Config { cases: 128, failure_persistence: None, ..Config::default() })]

    /// Any claims seal exactly when the session id is visible ASCII and the
    /// token fits `MAX_TOKEN_LEN`; a sealed token opens to the same claims
    /// at any time before its expiry, for its owner and only its owner's.
    #[test]
    fn claims_round_trip(
        key in any::<[u8; 32]>(),
        target in ".{0,300}",
        session in session_id(),
        owner in owner(),
        other in owner(),
        expires in 1u64..,
        before in any::<u64>(),
    ) {
        let s = sealer(&[key], &target);
        let claims = SessionClaims { upstream_session: session.as_str().into(), owner: owner.clone(), target: s.target().into(), expires };
        // version ‖ key id ‖ nonce ‖ plaintext ‖ tag, base64url without padding.
        let mut plaintext = Vec::new();
        let encodes = claims.encode(&mut plaintext, usize::MAX).is_ok();
        let fits = (4 * (1 + 4 + 12 + plaintext.len() + 16)).div_ceil(3) <= MAX_TOKEN_LEN;
        let visible = !session.is_empty() && session.bytes().all(|b| (0x21..=0x7e).contains(&b));
        prop_assert_eq!(encodes, visible);
        match s.seal(&claims) {
            Ok(token) => {
                prop_assert!(visible && fits);
                prop_assert!(token.len() <= MAX_TOKEN_LEN, "{}", token.len());
                let now = before % expires;
                prop_assert_eq!(s.open_at(token.as_bytes(), now), Ok(claims.clone()));
                // `open_for` reads the real clock: only meaningful while the token is fresh.
                if expires > unix_now().saturating_add(3600) {
                    prop_assert_eq!(s.open_for(token.as_bytes(), &owner), Ok(claims.clone()));
                    if other != owner {
                        prop_assert_eq!(s.open_for(token.as_bytes(), &other), Err(OpenError::OtherOwner));
                    }
                }
            }
            Err(e) => {
                prop_assert_eq!(e, SealError::Claims(EncodeError::SessionId));
                prop_assert!(!visible || !fits, "{} visible bytes fit but were refused", session.len());
            }
        }
    }

}

proptest! {
    // Each case opens every one-bit alteration of a token (about 1,700 opens):
    // fewer cases, still every bit of every token generated.
    #![proptest_config(Config { cases: 32, failure_persistence: None, ..Config::default() })]

    /// Flipping any bit of a token's text or of its decoded bytes, cutting
    /// it short or adding to it: refused, never as expired or misdirected
    /// (so never by reading forged claims).
    #[test]
    fn altered_tokens_are_refused_unread(
        key in any::<[u8; 32]>(),
        claims in claims(&sealer(&[[0; 32]], "t")),
        extra in "[A-Za-z0-9_-]{1,8}",
    ) {
        let s = sealer(&[key], "t");
        let token = s.seal(&claims).expect("sealable");
        let now = claims.expires - 1;
        let mut text = token.clone().into_bytes();
        for i in 0..text.len() {
            for bit in 0..8 {
                text[i] ^= 1 << bit;
                prop_assert!(rejected_unread(s.open_at(&text, now)), "text byte {} bit {}", i, bit);
                text[i] ^= 1 << bit;
            }
        }
        let mut raw = URL_SAFE_NO_PAD.decode(&token).expect("base64url");
        for i in 0..raw.len() {
            for bit in 0..8 {
                raw[i] ^= 1 << bit;
                let altered = URL_SAFE_NO_PAD.encode(&raw);
                prop_assert!(rejected_unread(s.open_at(altered.as_bytes(), now)), "raw byte {} bit {}", i, bit);
                raw[i] ^= 1 << bit;
            }
        }
        for len in 0..token.len() {
            prop_assert!(rejected_unread(s.open_at(&token.as_bytes()[..len], now)), "cut to {}", len);
        }
        let longer = format!("{token}{extra}");
        prop_assert!(rejected_unread(s.open_at(longer.as_bytes(), now)), "extended by {}", extra);
        prop_assert_eq!(s.open_at(token.as_bytes(), now), Ok(claims));
    }
}

proptest! {
    #![proptest_config(Config { cases: 128, failure_persistence: None, ..Config::default() })]

    /// With several keys, a token opens under any key list that holds the
    /// key it was sealed with, wherever in the list, and under no other.
    #[test]
    fn only_a_listed_sealing_key_opens(
        keys in prop::collection::hash_set(any::<[u8; 32]>(), 1..5),
        sealing in any::<prop::sample::Index>(),
        lists in prop::collection::vec(prop::collection::vec(any::<prop::sample::Index>(), 1..4), 1..6),
        claims in claims(&sealer(&[[0; 32]], "t")),
    ) {
        let keys: Vec<[u8; 32]> = keys.into_iter().collect();
        let first = keys[sealing.index(keys.len())];
        let token = sealer(&[first], "t").seal(&claims).expect("sealable");
        let now = claims.expires - 1;
        for list in lists {
            let list: Vec<[u8; 32]> = list.iter().map(|i| keys[i.index(keys.len())]).collect();
            let opened = sealer(&list, "t").open_at(token.as_bytes(), now);
            if list.contains(&first) {
                prop_assert_eq!(opened, Ok(claims.clone()));
            } else {
                // Forged only if another key shares the 4-byte key id (2^-32).
                prop_assert!(matches!(opened, Err(OpenError::UnknownKey | OpenError::Forged)), "{:?}", opened);
            }
        }
    }

    /// Another target never opens a token, whatever the two names are, and
    /// expiry is absolute: from `expires` on, the token is refused.
    #[test]
    fn other_targets_and_expired_tokens_are_refused(
        key in any::<[u8; 32]>(),
        ours in ".{0,300}",
        theirs in ".{0,300}",
        session in "[!-~]{1,100}",
        owner in owner(),
        expires in 1u64..,
        late in any::<u64>(),
    ) {
        let (s, other) = (sealer(&[key], &ours), sealer(&[key], &theirs));
        let claims = SessionClaims { upstream_session: session.into(), owner, target: s.target().into(), expires };
        let token = s.seal(&claims).expect("sealable");
        if other.target() != s.target() {
            prop_assert_eq!(other.open_at(token.as_bytes(), expires - 1), Err(OpenError::OtherTarget));
        }
        let now = expires.saturating_add(late % (u64::MAX - expires + 1));
        prop_assert_eq!(s.open_at(token.as_bytes(), now), Err(OpenError::Expired));
    }
}
