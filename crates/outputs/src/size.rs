//! Sizes as the configuration writes them: bytes, or `512KiB`, `64MiB`, `1GiB`, `10MB`, parsed
//! by the `bytesize` crate (decimal units are powers of 1000, binary ones of 1024).

use serde::Deserialize;

/// A size in bytes: an integer, or a string with a unit (`512KiB`, `64MiB`, `1GiB`, `10MB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Number(u64),
            Text(String),
        }
        let bad = |s: &str| {
            serde::de::Error::custom(format!(
                "'{s}' is not a size (write bytes, or e.g. 64MiB, 1GiB)"
            ))
        };
        match Form::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a size in bytes"))?
        {
            Form::Number(n) => Ok(ByteSize(n as usize)),
            Form::Text(s) => s
                .trim()
                .parse::<bytesize::ByteSize>()
                .ok()
                .and_then(|b| usize::try_from(b.as_u64()).ok())
                .map(ByteSize)
                .ok_or_else(|| bad(&s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(v: serde_json::Value) -> Result<usize, String> {
        serde_json::from_value::<ByteSize>(v)
            .map(|b| b.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_bytes_and_the_documented_units() {
        let ok = [
            (serde_json::json!(4096), 4096),
            (serde_json::json!("4096"), 4096),
            (serde_json::json!("512KiB"), 512 << 10),
            (serde_json::json!("64MiB"), 64 << 20),
            (serde_json::json!("1GiB"), 1 << 30),
            (serde_json::json!("10MB"), 10_000_000),
            (serde_json::json!("2 MiB"), 2 << 20),
        ];
        for (v, bytes) in ok {
            assert_eq!(size(v.clone()), Ok(bytes), "{v}");
        }
        for bad in ["lots", "-1MiB", "", "5 parsecs"] {
            let e = size(serde_json::json!(bad)).unwrap_err();
            assert!(e.contains("is not a size"), "{bad}: {e}");
        }
    }
}
