//! Trusted proxy ranges, and the forwarding headers' hop lists.

use std::net::IpAddr;

use http::{HeaderMap, header};

/// Networks whose addresses are trusted to report the client's address.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<(IpAddr, u8)>,
}

/// A trusted-proxy entry that is not an address or CIDR range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidProxy(pub String);

impl std::fmt::Display for InvalidProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` is not an IP address or CIDR range (e.g. 10.0.0.0/8, 192.168.1.10, fd00::/8)", self.0)
    }
}

impl std::error::Error for InvalidProxy {}

impl TrustedProxies {
    /// Parses addresses and CIDR ranges.
    pub fn parse<I, S>(entries: I) -> Result<Self, InvalidProxy>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut nets = Vec::new();
        for entry in entries {
            let text = entry.as_ref().trim();
            let invalid = || InvalidProxy(text.to_owned());
            let (addr, bits) = match text.split_once('/') {
                Some((a, b)) => {
                    (a.parse::<IpAddr>().map_err(|_| invalid())?, Some(b.parse::<u8>().map_err(|_| invalid())?))
                }
                None => (text.parse::<IpAddr>().map_err(|_| invalid())?, None),
            };
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = bits.unwrap_or(max);
            if bits > max {
                return Err(invalid());
            }
            nets.push((addr, bits));
        }
        Ok(TrustedProxies { nets })
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Is `ip` inside a trusted range? IPv4-mapped IPv6 counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|&(net, bits)| match (canonical(net), ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_eq(u128::from(u32::from(n)) << 96, u128::from(u32::from(a)) << 96, bits)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(u128::from(n), u128::from(a), bits),
            _ => false,
        })
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: u128, b: u128, bits: u8) -> bool {
    bits == 0 || (a ^ b) >> (128 - u32::from(bits)) == 0
}

/// The hops the forwarding headers report, left (client side) to right
/// (nearest proxy). `Forwarded` wins over `X-Forwarded-For` when both are
/// present. `None` stands for a hop that is not an IP (`unknown`, an
/// obfuscated identifier, garbage).
pub(super) fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers.get_all(header::FORWARDED).iter().filter_map(|v| v.to_str().ok()).collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| node_ip(v.trim().trim_matches('"')))
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| node_ip(hop.trim()))
        .collect()
}

/// An RFC 7239 node (`192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]:80`) or a
/// bare IPv6 address, as an IP.
fn node_ip(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').and_then(|(v6, _)| v6.parse().ok());
    }
    node.rsplit_once(':').and_then(|(host, _port)| host.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn ranges() {
        let t = TrustedProxies::parse(["10.0.0.0/8", "192.168.1.10", "fd00::/8"]).expect("valid");
        let cases = [
            ("10.255.0.1", true),
            ("11.0.0.1", false),
            ("192.168.1.10", true),
            ("192.168.1.11", false),
            ("fd12::1", true),
            ("fe80::1", false),
            ("::ffff:10.1.1.1", true),
        ];
        for (ip, want) in cases {
            assert_eq!(t.contains(ip.parse().expect("ip")), want, "{ip}");
        }
        assert!(TrustedProxies::parse(["0.0.0.0/0"]).expect("all").contains("8.8.8.8".parse().expect("ip")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129", ""] {
            assert!(TrustedProxies::parse([bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn hops() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1, unknown"));
        h.append("x-forwarded-for", HeaderValue::from_static("2.2.2.2"));
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        assert_eq!(forwarded_hops(&h), vec![ip("1.1.1.1"), None, ip("2.2.2.2")]);
        h.insert(
            header::FORWARDED,
            HeaderValue::from_static(
                r#"for=192.0.2.60;proto=http, For="[2001:db8:cafe::17]:4711", for=_hidden, by=x;for=198.51.100.1:80"#,
            ),
        );
        assert_eq!(forwarded_hops(&h), vec![ip("192.0.2.60"), ip("2001:db8:cafe::17"), None, ip("198.51.100.1")]);
    }
}
