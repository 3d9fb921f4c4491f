//! Etsy's money, exactly: `{amount, divisor, currency_code}` becomes a
//! `Decimal` with no float on the way, and the one place Etsy wants a float
//! (an offering price written back) gets it at the edge.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Number;

use crate::wire::Money;

/// An amount Etsy gave, read exactly: the value, its currency code, and
/// whether a divisor that is not a power of ten made it inexact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Amount {
    pub value: Decimal,
    pub currency: Option<String>,
    /// `amount / divisor` had to be rounded (a divisor that is not 10^k).
    pub rounded: bool,
}

/// `amount / divisor` as a `Decimal`. With a power-of-ten divisor (all Etsy
/// sends: 100 for cents, 1 for yen) this is exact and keeps the divisor's
/// digits (`{2200, 100}` is `22.00`); any other divisor is divided and
/// flagged. `Err` says what is wrong with the object.
pub(crate) fn amount(m: &Money) -> Result<Amount, String> {
    let raw = m
        .amount
        .as_ref()
        .ok_or_else(|| "has no amount".to_owned())?;
    let amount = raw
        .as_i64()
        .ok_or_else(|| format!("amount {raw} is not a whole number"))?;
    let divisor = match &m.divisor {
        None => return Err("has no divisor".into()),
        Some(d) => d
            .as_i64()
            .filter(|d| *d > 0)
            .ok_or_else(|| format!("divisor {d} is not a positive whole number"))?,
    };
    let currency = m
        .currency_code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    if let Some(scale) = power_of_ten(divisor)
        && let Ok(value) = Decimal::try_new(amount, scale)
    {
        return Ok(Amount {
            value,
            currency,
            rounded: false,
        });
    }
    let value = Decimal::from(amount)
        .checked_div(Decimal::from(divisor))
        .ok_or_else(|| format!("{amount} / {divisor} is out of range"))?;
    let rounded = !terminates(amount, divisor);
    Ok(Amount {
        value,
        currency,
        rounded,
    })
}

/// Whether `amount / divisor` has a finite decimal expansion: the divisor,
/// once the fraction is reduced, has no prime factor but 2 and 5.
fn terminates(amount: i64, divisor: i64) -> bool {
    let (mut a, mut b) = (amount.unsigned_abs(), divisor.unsigned_abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    let mut d = divisor.unsigned_abs() / a.max(1);
    for p in [2, 5] {
        while d.is_multiple_of(p) {
            d /= p;
        }
    }
    d == 1
}

/// `Some(k)` when `n == 10^k`.
fn power_of_ten(mut n: i64) -> Option<u32> {
    let mut k = 0;
    while n > 1 {
        if n % 10 != 0 {
            return None;
        }
        n /= 10;
        k += 1;
    }
    (n == 1).then_some(k)
}

/// The digits after the point an amount of this order is shown with: those
/// of its grand total's divisor (Etsy's own statement of the currency's
/// minor units), else two.
pub(crate) fn minor_digits(m: Option<&Money>) -> u32 {
    m.and_then(|m| m.divisor.as_ref())
        .and_then(Number::as_i64)
        .and_then(power_of_ten)
        .unwrap_or(2)
}

/// One rendering per amount: at least `digits` after the point, never fewer
/// digits than the value has (so nothing is rounded away).
pub(crate) fn scaled(d: Decimal, digits: u32) -> Decimal {
    let mut d = d.normalize();
    if d.scale() < digits {
        d.rescale(digits);
    }
    d
}

/// A JSON number Etsy declares as a float (`buyer_coupon`), read through
/// its shortest decimal spelling, so `1.1` is `1.1`, not
/// `1.100000000000000088817841970012523`.
pub(crate) fn decimal_from_number(n: &Number) -> Option<Decimal> {
    let text = n.to_string();
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}

/// An offering price as `updateListingInventory` takes it: a float equal to
/// `amount / divisor`. A Money object is converted exactly first and only
/// then turned into the nearest float; a plain number is passed on.
pub(crate) fn price_float(price: &serde_json::Value) -> Result<f64, String> {
    match price {
        serde_json::Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("price {n} is not a number")),
        serde_json::Value::Object(_) => {
            let m: Money = serde_json::from_value(price.clone())
                .map_err(|e| format!("price is not a Money object: {e}"))?;
            let a = amount(&m).map_err(|e| format!("price {e}"))?;
            f64::from_str(&a.value.to_string())
                .map_err(|e| format!("price {} has no float form: {e}", a.value))
        }
        other => Err(format!("price {other} is neither Money nor a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn money(v: serde_json::Value) -> Money {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn amounts_are_exact_and_keep_the_divisors_digits() {
        let a = amount(&money(
            json!({"amount": 2200, "divisor": 100, "currency_code": "EUR"}),
        ))
        .unwrap();
        assert_eq!(a.value.to_string(), "22.00");
        assert_eq!(a.currency.as_deref(), Some("EUR"));
        assert!(!a.rounded);
        let yen = amount(&money(json!({"amount": 1500, "divisor": 1}))).unwrap();
        assert_eq!(yen.value.to_string(), "1500");
        let dinar = amount(&money(json!({"amount": 12345, "divisor": 1000}))).unwrap();
        assert_eq!(dinar.value.to_string(), "12.345");
        let negative = amount(&money(json!({"amount": -5, "divisor": 100}))).unwrap();
        assert_eq!(negative.value.to_string(), "-0.05");
        // Past f64's exact integers, still exact.
        let big = amount(&money(
            json!({"amount": 9007199254740993_i64, "divisor": 100}),
        ))
        .unwrap();
        assert_eq!(big.value.to_string(), "90071992547409.93");
    }

    #[test]
    fn an_odd_divisor_is_divided_and_flagged() {
        let third = amount(&money(json!({"amount": 100, "divisor": 3}))).unwrap();
        assert!(third.rounded);
        let quarter = amount(&money(json!({"amount": 100, "divisor": 4}))).unwrap();
        assert_eq!(quarter.value.to_string(), "25");
        assert!(!quarter.rounded);
        let sixth = amount(&money(json!({"amount": 3, "divisor": 6}))).unwrap();
        assert_eq!(sixth.value, Decimal::new(5, 1));
        assert!(!sixth.rounded);
    }

    #[test]
    fn broken_money_says_what_is_wrong() {
        for (v, want) in [
            (json!({"divisor": 100}), "no amount"),
            (json!({"amount": 1.5, "divisor": 100}), "not a whole number"),
            (json!({"amount": 1}), "no divisor"),
            (json!({"amount": 1, "divisor": 0}), "not a positive"),
            (json!({"amount": 1, "divisor": -100}), "not a positive"),
        ] {
            let err = amount(&money(v.clone())).unwrap_err();
            assert!(err.contains(want), "{v}: {err}");
        }
    }

    #[test]
    fn scaling_adds_digits_but_never_rounds() {
        assert_eq!(scaled(Decimal::from(22), 2).to_string(), "22.00");
        assert_eq!(scaled("1.125".parse().unwrap(), 2).to_string(), "1.125");
        assert_eq!(scaled("3.500".parse().unwrap(), 2).to_string(), "3.50");
        assert_eq!(scaled(Decimal::from(1500), 0).to_string(), "1500");
    }

    #[test]
    fn float_numbers_are_read_by_their_shortest_spelling() {
        let n: Number = serde_json::from_str("1.1").unwrap();
        assert_eq!(decimal_from_number(&n).unwrap().to_string(), "1.1");
        let n: Number = serde_json::from_str("0").unwrap();
        assert_eq!(decimal_from_number(&n).unwrap(), Decimal::ZERO);
    }

    #[test]
    fn prices_become_floats_only_at_the_edge() {
        assert_eq!(
            price_float(&json!({"amount": 1999, "divisor": 100, "currency_code": "USD"})).unwrap(),
            19.99
        );
        assert_eq!(price_float(&json!(12.5)).unwrap(), 12.5);
        assert!(price_float(&json!("12.50")).is_err());
        assert!(price_float(&json!({"amount": 1})).is_err());
    }
}
