//! Printing results: aligned tables for people, JSON for scripts, `--fields` selection.

use std::io::{IsTerminal, Write};

use serde_json::{Map, Value};

use crate::cli::OutputFormat;
use crate::error::CliError;

/// How to print, resolved once from the command line.
#[derive(Debug)]
pub(crate) struct Printer {
    format: OutputFormat,
    fields: Vec<String>,
}

impl Printer {
    /// `format` or, when absent, table on a terminal and JSON otherwise.
    pub(crate) fn new(format: Option<OutputFormat>, fields: Vec<String>) -> Self {
        let format = format.unwrap_or(if std::io::stdout().is_terminal() {
            OutputFormat::Table
        } else {
            OutputFormat::Json
        });
        let fields = fields
            .into_iter()
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .collect();
        Self { format, fields }
    }

    /// Keeps the selected fields of `obj`; an unknown name is a usage error. (Table columns follow the
    /// order asked; JSON objects list their fields in name order.)
    fn select(&self, obj: Map<String, Value>) -> Result<Map<String, Value>, CliError> {
        if self.fields.is_empty() {
            return Ok(obj);
        }
        let mut out = Map::new();
        for f in &self.fields {
            match obj.get(f) {
                Some(v) => {
                    out.insert(f.clone(), v.clone());
                }
                None => {
                    let known: Vec<&str> = obj.keys().map(String::as_str).collect();
                    return Err(CliError::usage(format!(
                        "unknown field {f:?}; the fields are {}",
                        known.join(",")
                    )));
                }
            }
        }
        Ok(out)
    }

    /// Prints one object.
    pub(crate) fn object(&self, v: Value) -> Result<(), CliError> {
        let obj = self.select(into_map(v))?;
        match self.format {
            OutputFormat::Json => emit(&json(&Value::Object(obj))),
            OutputFormat::Table => {
                let width = obj.keys().map(|k| k.chars().count()).max().unwrap_or(0);
                let mut s = String::new();
                for (k, v) in &obj {
                    s.push_str(&format!("{k:width$}  {}\n", cell(v)));
                }
                emit(&s)
            }
        }
    }

    /// Prints a list of objects; `default_columns` are the table's columns when no `--fields` were given.
    pub(crate) fn list(&self, items: Vec<Value>, default_columns: &[&str]) -> Result<(), CliError> {
        let rows: Vec<Map<String, Value>> = items
            .into_iter()
            .map(|v| self.select(into_map(v)))
            .collect::<Result<_, _>>()?;
        match self.format {
            OutputFormat::Json => emit(&json(&Value::Array(
                rows.into_iter().map(Value::Object).collect(),
            ))),
            OutputFormat::Table => {
                let cols: Vec<String> = if self.fields.is_empty() {
                    default_columns.iter().map(|c| (*c).to_owned()).collect()
                } else {
                    self.fields.clone()
                };
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        cols.iter()
                            .map(|c| r.get(c).map(cell).unwrap_or_default())
                            .collect()
                    })
                    .collect();
                let widths: Vec<usize> = cols
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        cells
                            .iter()
                            .map(|r| r[i].chars().count())
                            .chain([c.chars().count()])
                            .max()
                            .unwrap_or(0)
                    })
                    .collect();
                let line = |vals: &[String]| {
                    let mut s = vals
                        .iter()
                        .zip(&widths)
                        .map(|(v, w)| format!("{v:w$}"))
                        .collect::<Vec<_>>()
                        .join("  ");
                    s.truncate(s.trim_end().len());
                    s.push('\n');
                    s
                };
                let mut s = line(&cols);
                for r in &cells {
                    s.push_str(&line(r));
                }
                emit(&s)
            }
        }
    }

    /// Prints a one-line confirmation for people; scripts get `{"Ok": true}` plus `extra`.
    pub(crate) fn done(&self, human: &str, extra: Value) -> Result<(), CliError> {
        match self.format {
            OutputFormat::Table => emit(&format!("{human}\n")),
            OutputFormat::Json => {
                let mut m = into_map(extra);
                m.insert("Ok".into(), Value::Bool(true));
                emit(&json(&Value::Object(m)))
            }
        }
    }
}

fn into_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => {
            let mut m = Map::new();
            m.insert("Value".into(), other);
            m
        }
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn json(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a message.
fn emit(s: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::new("Cli.Io", format!("standard output: {e}")))
        }
        _ => Ok(()),
    }
}
