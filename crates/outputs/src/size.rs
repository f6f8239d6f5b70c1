//! Sizes as the configuration writes them: bytes, or `512KiB`, `64MiB`, `1GiB`, `10MB`.

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
            Form::Text(s) => {
                let t = s.trim();
                let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
                let (num, unit) = t.split_at(split);
                let n: u64 = num.parse().map_err(|_| bad(&s))?;
                let mult: u64 = match unit.trim() {
                    "" | "B" => 1,
                    "KB" => 1000,
                    "MB" => 1000 * 1000,
                    "GB" => 1000 * 1000 * 1000,
                    "KiB" => 1 << 10,
                    "MiB" => 1 << 20,
                    "GiB" => 1 << 30,
                    _ => return Err(bad(&s)),
                };
                n.checked_mul(mult)
                    .map(|b| ByteSize(b as usize))
                    .ok_or_else(|| bad(&s))
            }
        }
    }
}
