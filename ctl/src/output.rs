//! Human tables by default, JSON with `--output json`.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Prints rows as an aligned table, or the given JSON value.
pub fn print(format: Format, headers: &[&str], rows: &[Vec<String>], json: Value) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("json values serialize")
        ),
        Format::Table => print!("{}", table(headers, rows)),
    }
}

pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_columns() {
        let out = super::table(
            &["ID", "MAC"],
            &[vec!["h1".into(), "aa".into()], vec!["host22".into(), "b".into()]],
        );
        assert_eq!(out, "ID      MAC\nh1      aa\nhost22  b\n");
    }
}
