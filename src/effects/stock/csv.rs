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

/// Parses a stock CSV (`sku,available` header, one SKU a record, RFC 4180
/// quoting through the `csv` crate: a quoted field may hold commas, quotes
/// and line breaks). Every bad record is reported with the line it starts
/// on; any problem means nothing is to be applied.
pub fn parse_stock_csv(text: &str) -> Result<Vec<StockUpdate>, Vec<CsvProblem>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut problems = Vec::new();
    let mut out: Vec<StockUpdate> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut header_seen = false;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    loop {
        let start = reader.position().clone();
        let read = reader.read_record(&mut record);
        let n = line_of(&record, &start);
        let problem = |message: String| CsvProblem { line: n, message };
        match read {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                problems.push(problem(read_error(&e)));
                header_seen = true;
                continue;
            }
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        // A quote opened and never closed swallows the rest of the file into
        // one field: only a last record can have an odd number of quotes.
        let end = usize::try_from(reader.position().byte()).unwrap_or(usize::MAX);
        let begin = usize::try_from(start.byte()).unwrap_or(usize::MAX);
        if end >= text.len()
            && text
                .get(begin..)
                .is_some_and(|raw| raw.matches('"').count() % 2 == 1)
        {
            problems.push(problem("a quoted field is not closed".to_owned()));
            header_seen = true;
            continue;
        }
        if !header_seen {
            header_seen = true;
            let names: Vec<String> = record.iter().map(str::to_ascii_lowercase).collect();
            if names != ["sku", "available"] {
                let found: Vec<&str> = record.iter().collect();
                problems.push(problem(format!(
                    "the header must be `sku,available`, found `{}`",
                    found.join(",")
                )));
            }
            continue;
        }
        if record.len() != 2 {
            problems.push(problem(format!(
                "expected 2 fields (sku,available), found {}",
                record.len()
            )));
            continue;
        }
        let (sku, qty) = (&record[0], &record[1]);
        let mut bad = false;
        if let Some(p) = sku_problem(sku) {
            problems.push(problem(p));
            bad = true;
        }
        let available = match qty.parse::<i64>() {
            Ok(v) if v >= 0 => v,
            Ok(v) => {
                problems.push(problem(format!("available must not be negative (got {v})")));
                bad = true;
                0
            }
            Err(_) => {
                problems.push(problem(format!("available {qty:?} is not a whole number")));
                bad = true;
                0
            }
        };
        if bad {
            continue;
        }
        if let Some(first) = seen.insert(sku.to_owned(), n) {
            problems.push(problem(format!("sku {sku} is already set on line {first}")));
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

/// The line a record starts on: where the reader stood before it, past any
/// blank lines the reader skipped.
fn line_of(record: &csv::StringRecord, before: &csv::Position) -> usize {
    let line = record.position().map_or(before.line(), csv::Position::line);
    usize::try_from(line).unwrap_or(usize::MAX)
}

fn read_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "the record is not UTF-8 text".to_owned(),
        _ => format!("unreadable record: {e}"),
    }
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
        assert!(bad[4].message.contains("expected 2 fields"), "{bad:?}");
        assert!(bad[5].message.contains("not closed"), "{bad:?}");
        let header = parse_stock_csv("sku;available\nA;1\n").unwrap_err();
        assert_eq!(header[0].line, 1);
        assert!(parse_stock_csv("").is_err());
    }

    #[test]
    fn a_quoted_field_may_hold_a_line_break() {
        // One record across lines 2 and 3; the records after it keep their
        // own line numbers.
        let text = "sku,available\n\"NOTE \"\"A\"\"\",\"1\n2\"\n\"TEE,\nBLUE\",4\nMUG,5\nCUP,-1\n";
        let problems = parse_stock_csv(text).unwrap_err();
        let found: Vec<(usize, &str)> = problems
            .iter()
            .map(|p| (p.line, p.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (2, "available \"1\\n2\" is not a whole number"),
                (4, "sku \"TEE,\\nBLUE\" contains a control character"),
                (7, "available must not be negative (got -1)"),
            ]
        );
        let ok = parse_stock_csv("sku,available\n\"MUG \"\"RED\"\"\",\"\n3\n\"\nTEE,1\n").unwrap();
        assert_eq!(
            ok,
            [
                StockUpdate {
                    sku: "MUG \"RED\"".into(),
                    available: 3
                },
                StockUpdate {
                    sku: "TEE".into(),
                    available: 1
                },
            ]
        );
    }
}
