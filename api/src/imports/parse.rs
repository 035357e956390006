//! Reading an upload: CSV (with a header row) or JSON lines, each row mapped onto a lead through a
//! column mapping (by default, columns named like the fields), custom field cells typed from text.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value};
use switchboard_workflows::business::Business;
use switchboard_workflows::lead::NewLead;

/// The file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ImportFormat)]
pub enum Format {
    /// Comma-separated, first row the header.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

/// Which column holds each field; absent entries default to the field's own name (matched
/// without regard to case).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub source: Option<String>,
    /// Custom field name → column.
    #[serde(default)]
    pub custom_fields: BTreeMap<String, String>,
}

/// A row read from the file: its line (the header is line 1 of a CSV) and the lead it makes, or
/// why it could not be read.
pub struct Row {
    pub line: u64,
    pub lead: Result<NewLead, String>,
}

/// One row's cells by column name (lower-cased).
type Cells = BTreeMap<String, Value>;

/// A row's line and its cells, or why they could not be read.
type LineCells = (u64, Result<Cells, String>);

/// Why a file as a whole is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum FileError {
    /// It cannot be read as its format.
    Unreadable(String),
    /// The mapping names a column the file does not have (every row would be rejected).
    UnknownColumn(String),
}

impl Mapping {
    /// Refuses a mapping naming a column that is not among `columns` (lower-cased).
    fn check(&self, columns: &BTreeSet<String>) -> Result<(), FileError> {
        let fields = [
            ("name", &self.name),
            ("phone", &self.phone),
            ("email", &self.email),
            ("source", &self.source),
        ];
        let named = fields
            .into_iter()
            .filter_map(|(field, column)| Some((field.to_owned(), column.as_ref()?)))
            .chain(
                self.custom_fields
                    .iter()
                    .map(|(field, column)| (format!("custom_fields.{field}"), column)),
            );
        for (field, column) in named {
            if !columns.contains(&column.to_lowercase()) {
                let known: Vec<&str> = columns.iter().map(String::as_str).collect();
                return Err(FileError::UnknownColumn(format!(
                    "mapping.{field} names the column {column:?}, which the file does not have \
                     (its columns: {})",
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// Reads every row of `body`; `Err` when the file as a whole cannot be read, or `mapping` names
/// a column it does not have.
pub fn rows(
    format: Format,
    body: &[u8],
    business: &Business,
    mapping: &Mapping,
) -> Result<Vec<Row>, FileError> {
    let (columns, cells) = match format {
        Format::Csv => csv_cells(body).map_err(FileError::Unreadable)?,
        Format::Jsonl => jsonl_cells(body),
    };
    mapping.check(&columns)?;
    Ok(cells
        .into_iter()
        .map(|(line, cells)| Row {
            line,
            lead: cells
                .and_then(|c| lead(&c, business, mapping))
                .and_then(storable),
        })
        .collect())
}

/// The file's columns (lower-cased) and its rows' cells.
type Read = (BTreeSet<String>, Vec<LineCells>);

fn csv_cells(body: &[u8]) -> Result<Read, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("the header row cannot be read: {e}"))?
        .iter()
        .map(str::to_lowercase)
        .collect();
    if headers.iter().all(String::is_empty) {
        return Err("the file has no header row".into());
    }
    let mut out = Vec::new();
    for record in reader.records() {
        match record {
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line());
                let cells = headers
                    .iter()
                    .zip(record.iter())
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(h, v)| (h.clone(), Value::String(v.to_owned())))
                    .collect();
                out.push((line, Ok(cells)));
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                out.push((line, Err(format!("unreadable CSV: {e}"))));
            }
        }
    }
    Ok((headers.into_iter().collect(), out))
}

/// The columns of JSON lines are the keys any line has.
fn jsonl_cells(body: &[u8]) -> Read {
    let cells: Vec<LineCells> = String::from_utf8_lossy(body)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let cells = match serde_json::from_str::<Value>(l) {
                Ok(Value::Object(o)) => Ok(o
                    .into_iter()
                    .filter(|(_, v)| !v.is_null() && v != "")
                    .map(|(k, v)| (k.to_lowercase(), v))
                    .collect()),
                Ok(_) => Err("the line is not a JSON object".to_owned()),
                Err(e) => Err(format!("the line is not JSON: {e}")),
            };
            (i as u64 + 1, cells)
        })
        .collect();
    let columns = cells
        .iter()
        .filter_map(|(_, c)| c.as_ref().ok())
        .flat_map(|c| c.keys().cloned())
        .collect();
    (columns, cells)
}

/// The lead, unless a field of it holds what cannot be stored (see `crate::storable`).
fn storable(lead: NewLead) -> Result<NewLead, String> {
    let fields = serde_json::to_value(&lead).map_err(|e| e.to_string())?;
    match crate::storable::nul_path(&fields) {
        Some(field) => Err(crate::storable::why(&field)),
        None => Ok(lead),
    }
}

/// The lead a row makes.
fn lead(cells: &Cells, business: &Business, mapping: &Mapping) -> Result<NewLead, String> {
    let cell = |mapped: &Option<String>, field: &str| {
        let column = mapped.as_deref().unwrap_or(field).to_lowercase();
        cells.get(&column).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let name = cell(&mapping.name, "name").ok_or("no name")?;
    let phone = cell(&mapping.phone, "phone").ok_or("no phone")?;
    let mut custom_fields = Map::new();
    for field in &business.custom_fields {
        let column = mapping
            .custom_fields
            .get(&field.name)
            .unwrap_or(&field.name)
            .to_lowercase();
        if let Some(v) = cells.get(&column) {
            let typed = match v {
                Value::String(s) => field.from_text(s),
                other => other.clone(),
            };
            custom_fields.insert(field.name.clone(), typed);
        }
    }
    Ok(NewLead {
        business: business.id.clone(),
        name,
        phone,
        email: cell(&mapping.email, "email"),
        source: cell(&mapping.source, "source"),
        custom_fields,
        consent: None,
        timezone: cell(&None, "timezone"),
        sim: None,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use switchboard_workflows::business::shipped;

    use super::*;

    fn demo() -> Business {
        shipped().remove(0).business
    }

    #[test]
    fn a_mapping_naming_a_missing_column_refuses_the_file() {
        let body = b"Full Name,Mobile\nAda,+14155550101\n";
        let mapping: Mapping =
            serde_json::from_str(r#"{"name":"full name","phone":"Cell"}"#).unwrap();
        let Err(FileError::UnknownColumn(message)) = rows(Format::Csv, body, &demo(), &mapping)
        else {
            panic!("accepted")
        };
        assert!(
            message.starts_with("mapping.phone names the column \"Cell\""),
            "{message}"
        );
        assert!(message.contains("full name, mobile"), "{message}");
        let mapping: Mapping =
            serde_json::from_str(r#"{"name":"full name","phone":"MOBILE"}"#).unwrap();
        let read = rows(Format::Csv, body, &demo(), &mapping).unwrap();
        assert!(read[0].lead.is_ok());
        let jsonl = b"{\"n\":\"Ada\",\"phone\":\"+14155550101\"}\n";
        let mapping: Mapping = serde_json::from_str(r#"{"name":"name"}"#).unwrap();
        assert!(matches!(
            rows(Format::Jsonl, jsonl, &demo(), &mapping),
            Err(FileError::UnknownColumn(_))
        ));
    }

    #[test]
    fn a_row_holding_a_nul_is_rejected_and_the_next_read() {
        let body = "name,phone\nAda\0Lovelace,+14155550101\nGrace,+14155550102\n";
        let read = rows(Format::Csv, body.as_bytes(), &demo(), &Mapping::default()).unwrap();
        assert_eq!(read.len(), 2);
        let refused = read[0].lead.as_ref().unwrap_err();
        assert!(refused.starts_with("name holds a NUL"), "{refused}");
        assert!(read[1].lead.is_ok());
        let body = "{\"name\":\"Ada\",\"phone\":\"+14155550101\",\"email\":\"a\\u0000@b.c\"}\n";
        let read = rows(Format::Jsonl, body.as_bytes(), &demo(), &Mapping::default()).unwrap();
        assert!(
            read[0]
                .lead
                .as_ref()
                .unwrap_err()
                .starts_with("email holds a NUL")
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_bytes_are_read_or_refused_as_csv_or_json_lines(
            body in prop::collection::vec(any::<u8>(), 0..2048),
        ) {
            let business = demo();
            for format in [Format::Csv, Format::Jsonl] {
                if let Ok(rows) = rows(format, &body, &business, &Mapping::default()) {
                    for row in rows {
                        if let Ok(lead) = row.lead {
                            prop_assert_eq!(lead.business, "demo");
                        }
                    }
                }
            }
        }

        #[test]
        fn csv_shaped_text_keeps_its_line_numbers(
            cells in prop::collection::vec(("[A-Za-z ,\"]{0,12}", "\\+?[0-9]{0,14}"), 1..40),
        ) {
            let mut csv = String::from("name,phone\n");
            for (name, phone) in &cells {
                csv.push_str(&format!("\"{}\",{phone}\n", name.replace('"', "\"\"")));
            }
            let rows = rows(Format::Csv, csv.as_bytes(), &demo(), &Mapping::default()).unwrap();
            prop_assert_eq!(rows.len(), cells.len());
            for (i, row) in rows.iter().enumerate() {
                prop_assert_eq!(row.line, i as u64 + 2);
            }
        }
    }

    #[test]
    fn a_mapping_picks_columns_and_types_custom_fields() {
        let csv = "Full Name,Mobile,Budget\nAda,+14155552671,Over 1M\n";
        let mapping: Mapping = serde_json::from_str(
            r#"{"name":"full name","phone":"Mobile","custom_fields":{"budget_range":"BUDGET"}}"#,
        )
        .unwrap();
        let rows = rows(Format::Csv, csv.as_bytes(), &demo(), &mapping).unwrap();
        let lead = rows[0].lead.as_ref().unwrap();
        assert_eq!(
            (lead.name.as_str(), lead.phone.as_str()),
            ("Ada", "+14155552671")
        );
        assert_eq!(lead.custom_fields["budget_range"], "Over 1M");
    }
}
