//! Carrier names: switchyard's lower-case carrier codes (`ups`,
//! `royal_mail`) and the names Etsy's `createReceiptShipment` takes
//! (`ups`, `royal-mail`: lower case, words joined by `-`). Etsy links a
//! tracking code to the carrier's site only for the carriers it knows (the
//! shop's list is `getShippingCarriers`); any other name is stored as given,
//! and an empty one is sent as Etsy's `other`.

/// The name sent to Etsy for a switchyard carrier code.
pub fn etsy_carrier(code: &str) -> String {
    let name = slug(code, '-');
    if name.is_empty() {
        "other".to_owned()
    } else {
        name
    }
}

/// The switchyard code for a carrier name Etsy shows on a shipment, so that
/// a shipment pushed as `royal_mail` reads back as `royal_mail`.
pub fn canonical_carrier(name: &str) -> String {
    slug(name, '_')
}

/// Lower case, runs of spaces, `-`, `_` and `.` made one `sep`.
fn slug(s: &str, sep: char) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending = false;
    for c in s.trim().chars() {
        if matches!(c, ' ' | '-' | '_' | '.') {
            pending = !out.is_empty();
        } else {
            if pending {
                out.push(sep);
                pending = false;
            }
            out.extend(c.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for code in ["ups", "usps", "royal_mail", "canada_post", "dhl", "other"] {
            assert_eq!(canonical_carrier(&etsy_carrier(code)), code);
        }
        assert_eq!(etsy_carrier("royal_mail"), "royal-mail");
        assert_eq!(etsy_carrier(" Royal Mail "), "royal-mail");
        assert_eq!(canonical_carrier("Canada-Post"), "canada_post");
        assert_eq!(etsy_carrier(""), "other");
        assert_eq!(etsy_carrier(" - "), "other");
    }
}
