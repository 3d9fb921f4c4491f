//! Stock CSV files (`stock import`): `sku,available`, one SKU a row.

use std::collections::HashMap;

use super::{StockUpdate, sku_problem};

/// A bad row of a stock CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvProblem {
    /// 1-based line number in the file.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for CsvProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses a stock CSV (`sku,available` header, one SKU a row, RFC 4180
/// quoting). Every bad row is reported with its line number; any problem
/// means nothing is to be applied.
pub fn parse_stock_csv(text: &str) -> Result<Vec<StockUpdate>, Vec<CsvProblem>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut problems = Vec::new();
    let mut out: Vec<StockUpdate> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut header_seen = false;
    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        let fields = match split_csv_line(line) {
            Ok(f) => f,
            Err(m) => {
                problems.push(CsvProblem {
                    line: n,
                    message: m,
                });
                if !header_seen {
                    header_seen = true;
                }
                continue;
            }
        };
        if !header_seen {
            header_seen = true;
            let names: Vec<String> = fields
                .iter()
                .map(|f| f.trim().to_ascii_lowercase())
                .collect();
            if names != ["sku", "available"] {
                problems.push(CsvProblem {
                    line: n,
                    message: format!("the header must be `sku,available`, found `{line}`"),
                });
            }
            continue;
        }
        if fields.len() != 2 {
            problems.push(CsvProblem {
                line: n,
                message: format!("expected 2 fields (sku,available), found {}", fields.len()),
            });
            continue;
        }
        let sku = fields[0].trim();
        let qty = fields[1].trim();
        let mut bad = false;
        if let Some(p) = sku_problem(sku) {
            problems.push(CsvProblem {
                line: n,
                message: p,
            });
            bad = true;
        }
        let available = match qty.parse::<i64>() {
            Ok(v) if v >= 0 => v,
            Ok(v) => {
                problems.push(CsvProblem {
                    line: n,
                    message: format!("available must not be negative (got {v})"),
                });
                bad = true;
                0
            }
            Err(_) => {
                problems.push(CsvProblem {
                    line: n,
                    message: format!("available {qty:?} is not a whole number"),
                });
                bad = true;
                0
            }
        };
        if bad {
            continue;
        }
        if let Some(first) = seen.insert(sku.to_owned(), n) {
            problems.push(CsvProblem {
                line: n,
                message: format!("sku {sku} is already set on line {first}"),
            });
            continue;
        }
        out.push(StockUpdate {
            sku: sku.to_owned(),
            available,
        });
    }
    if !header_seen {
        problems.push(CsvProblem {
            line: 1,
            message: "the file is empty: expected the header `sku,available`".to_owned(),
        });
    } else if out.is_empty() && problems.is_empty() {
        problems.push(CsvProblem {
            line: 1,
            message: "the file has a header but no rows".to_owned(),
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Splits one CSV line into fields; `"..."` quotes, `""` inside quotes is a quote.
fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            ',' => {
                fields.push(std::mem::take(&mut cur));
                at_start = true;
                continue;
            }
            '"' if at_start && cur.trim().is_empty() => {
                cur.clear();
                quoted = true;
            }
            _ => cur.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err("a quoted field is not closed".to_owned());
    }
    fields.push(cur);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_reports_every_bad_row_with_its_line() {
        let ok =
            parse_stock_csv("\u{feff}sku,available\r\nMUG-RED,3\r\n\"TEE, BLUE\",0\n\n").unwrap();
        assert_eq!(
            ok,
            vec![
                StockUpdate {
                    sku: "MUG-RED".into(),
                    available: 3
                },
                StockUpdate {
                    sku: "TEE, BLUE".into(),
                    available: 0
                },
            ]
        );
        let bad =
            parse_stock_csv("sku,available\nA,1\nB,-2\n,4\nC,x\nA,5\nD,1,2\n\"E,1\n").unwrap_err();
        let lines: Vec<usize> = bad.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7, 8], "{bad:?}");
        assert!(bad[0].message.contains("negative"));
        assert!(bad[1].message.contains("empty"));
        assert!(bad[2].message.contains("not a whole number"));
        assert!(bad[3].message.contains("already set on line 2"));
        let header = parse_stock_csv("sku;available\nA;1\n").unwrap_err();
        assert_eq!(header[0].line, 1);
        assert!(parse_stock_csv("").is_err());
    }
}
