//! Kubernetes resource quantities, as far as the HPA needs them: reading a target such
//! as `averageValue: 500Mi` into a milli-value, and writing a measured average the way
//! the controller stores it in `status.currentMetrics`.
//!
//! The controller does all its resource arithmetic on milli-values (`MilliValue()`):
//! millicores for cpu, thousandths of a byte for memory. The port does the same, so
//! integer truncation happens at the same places.

/// Parses a quantity (`100m`, `0.5`, `1.5Gi`, `128974848`, `129e6`, `123Mi`) into its
/// milli-value, rounded up like Kubernetes' `MilliValue()`. `None` for anything that is
/// not a non-negative quantity, or too large for a `u64` milli-value.
pub fn parse_milli(quantity: &str) -> Option<u64> {
    let text = quantity.trim();
    let text = text.strip_prefix('+').unwrap_or(text);
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if fraction.contains('.') {
        return None;
    }

    // mantissa / 10^fraction_digits, as exact integers.
    let mut numerator: u128 = 0;
    for digit in whole.bytes().chain(fraction.bytes()) {
        numerator = numerator
            .checked_mul(10)?
            .checked_add(u128::from(digit - b'0'))?;
    }
    let mut denominator: u128 = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    numerator = numerator.checked_mul(1000)?;

    match suffix {
        "" => {}
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let power = match suffix {
                "Ki" => 1,
                "Mi" => 2,
                "Gi" => 3,
                "Ti" => 4,
                "Pi" => 5,
                _ => 6,
            };
            numerator = numerator.checked_mul(1024u128.pow(power))?;
        }
        _ => {
            let exponent: i32 = match suffix {
                "n" => -9,
                "u" => -6,
                "m" => -3,
                "k" => 3,
                "M" => 6,
                "G" => 9,
                "T" => 12,
                "P" => 15,
                "E" => 18,
                _ => {
                    let digits = suffix.strip_prefix(['e', 'E'])?;
                    if digits.is_empty() {
                        return None;
                    }
                    digits.parse().ok()?
                }
            };
            let scale = 10u128.checked_pow(exponent.unsigned_abs())?;
            if exponent >= 0 {
                numerator = numerator.checked_mul(scale)?;
            } else {
                denominator = denominator.checked_mul(scale)?;
            }
        }
    }
    u64::try_from(numerator.div_ceil(denominator)).ok()
}

/// Formats a milli-value the way `resource.NewMilliQuantity(v, DecimalSI).String()` does:
/// the shortest exact form with a decimal SI suffix (`250m`, `1`, `1500m`, `5M`,
/// `1048576`).
pub(crate) fn format_milli(milli: u64) -> String {
    if milli == 0 {
        return "0".to_owned();
    }
    let mut mantissa = u128::from(milli);
    let mut exponent: i32 = -3;
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exponent += 1;
    }
    // Kubernetes only uses exponents that are multiples of three; it pads the mantissa
    // back with zeros to reach the next lower one.
    match exponent.rem_euclid(3) {
        1 => {
            mantissa *= 10;
            exponent -= 1;
        }
        2 => {
            mantissa *= 100;
            exponent -= 2;
        }
        _ => {}
    }
    let suffix = match exponent {
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        _ => "E",
    };
    if exponent > 18 {
        // Beyond exa: unreachable from a u64 milli-value, kept for completeness.
        return format!("{mantissa}e{exponent}");
    }
    format!("{mantissa}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quantities_into_rounded_up_milli_values() {
        let cases = [
            ("100m", Some(100)),
            ("0.5", Some(500)),
            ("1", Some(1000)),
            ("1.0", Some(1000)),
            ("15.0", Some(15_000)),
            ("1k", Some(1_000_000)),
            ("1Ki", Some(1_024_000)),
            ("128974848", Some(128_974_848_000)),
            ("129e6", Some(129_000_000_000)),
            ("129M", Some(129_000_000_000)),
            ("123Mi", Some(128_974_848_000)),
            ("1.5Gi", Some(1_610_612_736_000)),
            // MilliValue rounds up: 1 nano-unit is 1 milli-unit.
            ("1n", Some(1)),
            ("1500u", Some(2)),
            (".5", Some(500)),
            ("-1", None),
            ("1Xi", None),
            ("", None),
            ("1.2.3", None),
            ("1e", None),
            ("99E", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_milli(text), want, "{text}");
        }
    }

    #[test]
    fn formats_milli_values_like_decimal_si_quantities() {
        let cases = [
            (0, "0"),
            (250, "250m"),
            (1000, "1"),
            (1500, "1500m"),
            (1200, "1200m"),
            (600_000, "600"),
            (1_000_000, "1k"),
            (15_000_000, "15k"),
            (5_000_000_000, "5M"),
            (1_048_576_000, "1048576"),
            (524_288_000, "524288"),
            (20_000, "20"),
        ];
        for (milli, want) in cases {
            assert_eq!(format_milli(milli), want, "{milli}");
        }
    }
}
