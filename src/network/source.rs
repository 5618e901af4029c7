//! `--source-ip`: the local addresses that connections leave from, taken in turn. One address
//! has about 28,000 ephemeral ports per destination, and a server's per-IP limits (nginx
//! `limit_conn`) see every connection as one client; spreading over several addresses lifts both.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most addresses a CIDR block may expand to.
const MAX_ADDRESSES: usize = 65_536;

#[derive(Debug, Default)]
pub struct SourceAddresses {
    addresses: Vec<IpAddr>,
    next: AtomicUsize,
}

/// A copy starts its turns afresh.
impl Clone for SourceAddresses {
    fn clone(&self) -> SourceAddresses {
        SourceAddresses { addresses: self.addresses.clone(), next: AtomicUsize::new(0) }
    }
}

impl SourceAddresses {
    /// `ADDR[,ADDR…]`, where each item may also be a CIDR block (`127.0.0.2/31`). In a block
    /// of IPv4 addresses larger than /31, the network and broadcast addresses are left out.
    pub fn parse(text: &str) -> Result<SourceAddresses, String> {
        let mut addresses = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.split_once('/') {
                None => addresses.push(
                    item.parse::<IpAddr>()
                        .map_err(|_| format!("{item:?} is not an IP address; write it like 127.0.0.2 or ::1"))?,
                ),
                Some((network, bits)) => expand_block(item, network, bits, &mut addresses)?,
            }
            if addresses.len() > MAX_ADDRESSES {
                return Err(format!("more than {MAX_ADDRESSES} addresses; give a smaller block"));
            }
        }
        if addresses.is_empty() {
            return Err("no address given; write it like 127.0.0.1,127.0.0.2 or 127.0.0.0/29".into());
        }
        Ok(SourceAddresses { addresses, next: AtomicUsize::new(0) })
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    /// The next address in turn, or `None` to let the system choose.
    pub fn next(&self) -> Option<IpAddr> {
        if self.addresses.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.addresses[turn % self.addresses.len()])
    }
}

fn expand_block(item: &str, network: &str, bits: &str, into: &mut Vec<IpAddr>) -> Result<(), String> {
    let network: IpAddr =
        network.parse().map_err(|_| format!("{item:?}: {network:?} is not an IP address (write 127.0.0.0/29)"))?;
    let width = if network.is_ipv4() { 32 } else { 128 };
    let bits: u32 = bits
        .parse()
        .ok()
        .filter(|b| *b <= width)
        .ok_or_else(|| format!("{item:?}: the prefix length must be 0 to {width}"))?;
    let host_bits = width - bits;
    if host_bits > 16 {
        return Err(format!("{item:?} holds more than {MAX_ADDRESSES} addresses; give a smaller block"));
    }
    let count = 1u128 << host_bits;
    let base = match network {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) & !(count - 1),
        IpAddr::V6(v6) => u128::from(v6) & !(count - 1),
    };
    // IPv4 blocks of four or more: the first and last address are not hosts.
    let skip_ends = network.is_ipv4() && host_bits >= 2;
    for offset in 0..count {
        if skip_ends && (offset == 0 || offset == count - 1) {
            continue;
        }
        let value = base + offset;
        into.push(match network {
            IpAddr::V4(_) => IpAddr::from(std::net::Ipv4Addr::from(value as u32)),
            IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(value)),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_blocks_expand_and_are_taken_in_turn() {
        let sources = SourceAddresses::parse("127.0.0.2, 127.0.0.3,::1").unwrap();
        let turns: Vec<String> = (0..4).map(|_| sources.next().unwrap().to_string()).collect();
        assert_eq!(turns, ["127.0.0.2", "127.0.0.3", "::1", "127.0.0.2"]);
        let block = SourceAddresses::parse("127.0.0.0/29").unwrap();
        let first_last = (block.addresses()[0].to_string(), block.addresses().last().unwrap().to_string());
        assert_eq!(block.addresses().len(), 6);
        assert_eq!(first_last, ("127.0.0.1".to_string(), "127.0.0.6".to_string()));
        assert_eq!(SourceAddresses::parse("127.0.0.4/31").unwrap().addresses().len(), 2);
        assert_eq!(SourceAddresses::parse("fd00::/126").unwrap().addresses().len(), 4);
    }

    #[test]
    fn bad_items_are_named() {
        assert!(SourceAddresses::parse("127.0.0.300").unwrap_err().contains("not an IP address"));
        assert!(SourceAddresses::parse("10.0.0.0/8").unwrap_err().contains("more than"));
        assert!(SourceAddresses::parse("10.0.0.0/33").unwrap_err().contains("prefix length"));
        assert!(SourceAddresses::parse(" , ").unwrap_err().contains("no address"));
        assert!(SourceAddresses::default().next().is_none());
    }
}
