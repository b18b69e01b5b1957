//! Quantities written for people: byte counts as `512 B`, `1.5 MiB`. The import summary and
//! `--list-tables` both print sizes, so they share this one way of writing them.

/// `b` bytes in binary units with one decimal (`3.2 GiB`); below 1 KiB the exact count.
pub fn human_size(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
        assert_eq!(human_size(3 << 40), "3.0 TiB");
        assert_eq!(human_size(5000 << 40), "5000.0 TiB");
    }
}
