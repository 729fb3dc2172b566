use mcp_guard_layers::identity::AuthMethod;

use super::*;
use crate::config::SealingKey;

fn sealing(keys: &[u8]) -> SessionSealing {
    SessionSealing {
        keys: keys.iter().map(|k| SealingKey([*k; 32])).collect(),
        ttl: Duration::from_secs(3600),
        replica_id: None,
    }
}

fn sealer(keys: &[u8]) -> Sealer {
    Sealer::new(&sealing(keys), "http://upstream/mcp").unwrap()
}

fn alice() -> Owner {
    Owner::principal(AuthMethod::ApiKey, &"alice".into())
}

fn token(s: &Sealer) -> String {
    s.seal(&s.claims("upstream-session-1", alice())).unwrap()
}

#[test]
fn round_trip() {
    let s = sealer(&[1]);
    let t = token(&s);
    assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{t}");
    let claims = s.open_for(t.as_bytes(), &alice()).unwrap();
    assert_eq!(&*claims.upstream_session, "upstream-session-1");
    assert_eq!(&*claims.target, "http://upstream/mcp");
    assert!(claims.expires > unix_now() + 3500);
    assert_ne!(token(&s), t, "a fresh nonce per token");
    // Nothing of the session id or the owner shows through.
    assert!(!t.contains("upstream") && !t.contains("alice"));
}

#[test]
fn rotation_old_keys_open_the_first_seals() {
    let old = sealer(&[1]);
    let t = token(&old);
    let rotated = sealer(&[2, 1]);
    assert!(rotated.open(t.as_bytes()).is_ok(), "old key, now second, still opens");
    let fresh = token(&rotated);
    assert!(old.open(fresh.as_bytes()).is_err(), "new tokens use the new key");
    assert!(sealer(&[2]).open(fresh.as_bytes()).is_ok());
    assert_eq!(sealer(&[2]).open(t.as_bytes()), Err(OpenError::UnknownKey), "removed key");
    assert!(Sealer::new(&sealing(&[]), "x").is_err());
}

#[test]
fn every_altered_byte_is_refused() {
    let s = sealer(&[1]);
    let t = token(&s);
    let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
    for i in 0..raw.len() {
        for bit in [0x01, 0x80] {
            raw[i] ^= bit;
            let altered = URL_SAFE_NO_PAD.encode(&raw);
            let err = s.open(altered.as_bytes()).unwrap_err();
            assert!(matches!(err, OpenError::Malformed | OpenError::UnknownKey | OpenError::Forged), "{i}: {err:?}");
            raw[i] ^= bit;
        }
    }
    // Truncated or extended.
    assert!(s.open(URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]).as_bytes()).is_err());
    let mut longer = raw.clone();
    longer.push(0);
    assert!(s.open(URL_SAFE_NO_PAD.encode(&longer).as_bytes()).is_err());
    // Another key with the same id slot cannot open it either.
    assert_eq!(sealer(&[9]).open(t.as_bytes()), Err(OpenError::UnknownKey));
}

#[test]
fn expired_other_owner_and_other_target_are_refused() {
    let s = sealer(&[1]);
    let t = token(&s);
    let claims = s.open(t.as_bytes()).unwrap();
    assert_eq!(s.open_at(t.as_bytes(), claims.expires), Err(OpenError::Expired));
    assert!(s.open_at(t.as_bytes(), claims.expires - 1).is_ok());
    let bob = Owner::principal(AuthMethod::ApiKey, &"bob".into());
    assert_eq!(s.open_for(t.as_bytes(), &bob), Err(OpenError::OtherOwner));
    let bearer_alice = Owner::principal(AuthMethod::Bearer, &"alice".into());
    assert_eq!(s.open_for(t.as_bytes(), &bearer_alice), Err(OpenError::OtherOwner));
    assert_eq!(s.open_for(t.as_bytes(), &Owner::Ip("127.0.0.1".parse().unwrap())), Err(OpenError::OtherOwner));
    let other = Sealer::new(&sealing(&[1]), "stdio:replica-b").unwrap();
    assert_eq!(other.open(t.as_bytes()), Err(OpenError::OtherTarget));
    // An expiry in the past is refused even when freshly sealed.
    let mut stale = s.claims("x", alice());
    stale.expires = unix_now() - 1;
    assert_eq!(s.open(s.seal(&stale).unwrap().as_bytes()), Err(OpenError::Expired));
}

#[test]
fn garbage_and_oversized_input_is_refused_without_panic() {
    let s = sealer(&[1]);
    let long = "A".repeat(MAX_TOKEN_LEN + 1);
    let max = "A".repeat(MAX_TOKEN_LEN);
    for input in [
        &b""[..],
        b"x",
        b"guessed",
        b"not base64!",
        b"====",
        long.as_bytes(),
        max.as_bytes(),
        &[0xff; 40],
        "AQ".as_bytes(),
    ] {
        assert!(s.open(input).is_err(), "{input:?}");
    }
    // A right-sized token with the wrong version byte.
    let mut raw = URL_SAFE_NO_PAD.decode(token(&s)).unwrap();
    raw[0] = 2;
    assert_eq!(s.open(URL_SAFE_NO_PAD.encode(&raw).as_bytes()), Err(OpenError::Malformed));
}

#[test]
fn bounded_claims() {
    let s = sealer(&[1]);
    let big = s.claims(&"s".repeat(MAX_PLAINTEXT), alice());
    assert!(matches!(s.seal(&big), Err(SealError::Claims(_))));
    // The longest session id that fits still makes a token within the limit.
    let fits = MAX_PLAINTEXT - 8 - 1 - 1 - 5 - 1 - "http://upstream/mcp".len();
    let t = s.seal(&s.claims(&"s".repeat(fits), alice())).unwrap();
    assert!(t.len() <= MAX_TOKEN_LEN, "{}", t.len());
    assert_eq!(s.open(t.as_bytes()).unwrap().upstream_session.len(), fits);
    assert!(s.seal(&s.claims("has space", alice())).is_err());
}

#[test]
fn debug_shows_no_key_material() {
    let s = sealer(&[0xab]);
    let debug = format!("{s:?}");
    assert!(debug.contains("key_ids") && !debug.contains("abababab") && !debug.contains("171, 171"), "{debug}");
}
