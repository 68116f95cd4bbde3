//! A streaming writer of the Prometheus text format 0.0.4, byte for byte what the
//! `prometheus` crate's `TextEncoder` writes for gauges. The crate's encoder needs every
//! sample as a `MetricFamily` in memory first, which at 100k tokens is hundreds of megabytes;
//! this writes each sample straight into the output (a compressor) as it is produced.

use std::io::{self, Write};

/// Writes families of gauges, one after the other. A family without samples is left out.
pub struct TextWriter<W> {
    out: W,
    /// The family whose `# HELP` and `# TYPE` lines are written with its first sample.
    pending: Option<(String, String, &'static str)>,
}

impl<W: Write> TextWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W) -> Self {
        Self { out, pending: None }
    }

    /// Starts a gauge family; its `# HELP` and `# TYPE` lines come with its first sample.
    pub fn gauge_family(&mut self, name: &str, help: &str) {
        self.pending = Some((name.to_owned(), help.to_owned(), "gauge"));
    }

    /// Starts a counter family (whose samples are read from elsewhere at render time).
    pub fn counter_family(&mut self, name: &str, help: &str) {
        self.pending = Some((name.to_owned(), help.to_owned(), "counter"));
    }

    fn header(&mut self) -> io::Result<()> {
        let Some((name, help, kind)) = self.pending.take() else {
            return Ok(());
        };
        if !help.is_empty() {
            write!(self.out, "# HELP {name} ")?;
            escape(&mut self.out, &help, false)?;
            self.out.write_all(b"\n")?;
        }
        writeln!(self.out, "# TYPE {name} {kind}")
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> io::Result<()> {
        self.header()?;
        self.out.write_all(name.as_bytes())?;
        let mut sep = b'{';
        for (k, v) in labels {
            self.out.write_all(&[sep])?;
            self.out.write_all(k.as_bytes())?;
            self.out.write_all(b"=\"")?;
            escape(&mut self.out, v, true)?;
            self.out.write_all(b"\"")?;
            sep = b',';
        }
        if !labels.is_empty() {
            self.out.write_all(b"}")?;
        }
        // `Display` of f64, as the crate's encoder writes it.
        writeln!(self.out, " {value}")
    }

    /// The writer inside.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Escapes `\` and newlines (and `"` in label values), as the text format requires.
fn escape(out: &mut impl Write, s: &str, quote: bool) -> io::Result<()> {
    let special = |b: u8| b == b'\\' || b == b'\n' || (quote && b == b'"');
    if !s.bytes().any(special) {
        return out.write_all(s.as_bytes());
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        if special(b) {
            out.write_all(&s.as_bytes()[start..i])?;
            out.write_all(match b {
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                _ => b"\\\"",
            })?;
            start = i + 1;
        }
    }
    out.write_all(&s.as_bytes()[start..])
}

#[cfg(test)]
mod tests {
    use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
    use prometheus::{Encoder, TextEncoder};

    use super::*;

    /// The crate's encoder and this writer agree on the same families.
    #[test]
    fn writes_what_the_prometheus_crate_writes() {
        type Sample<'a> = (Vec<(&'a str, &'a str)>, f64);
        let families: Vec<(&str, &str, Vec<Sample<'_>>)> = vec![
            (
                "a_timestamp_seconds",
                "When, in \\ Unix seconds.\nSecond line \"quoted\".",
                vec![
                    (
                        vec![
                            ("organization", "corp"),
                            ("token_name", "iPhone \"Mail\" \\ 📱\nx"),
                        ],
                        1793448000.123,
                    ),
                    (vec![("organization", ""), ("token_name", "ünï")], 0.0),
                    (vec![("organization", "x")], -2.5),
                    (vec![("organization", "x")], 1e21),
                    (vec![("organization", "x")], 0.1 + 0.2),
                ],
            ),
            ("no_labels", "", vec![(vec![], 7.0)]),
            ("empty_family", "Left out.", vec![]),
        ];
        let mut protos = Vec::new();
        let mut w = TextWriter::new(Vec::new());
        for (name, help, samples) in &families {
            let mut f = MetricFamily::default();
            f.set_name((*name).to_owned());
            f.set_help((*help).to_owned());
            f.set_field_type(MetricType::GAUGE);
            w.gauge_family(name, help);
            for (labels, value) in samples {
                let mut m = Metric::default();
                m.set_label(
                    labels
                        .iter()
                        .map(|(k, v)| {
                            let mut l = LabelPair::default();
                            l.set_name((*k).to_owned());
                            l.set_value((*v).to_owned());
                            l
                        })
                        .collect(),
                );
                let mut g = Gauge::default();
                g.set_value(*value);
                m.set_gauge(g);
                f.mut_metric().push(m);
                w.sample(name, labels, *value).unwrap();
            }
            if !f.get_metric().is_empty() {
                protos.push(f);
            }
        }
        let mut want = Vec::new();
        TextEncoder::new().encode(&protos, &mut want).unwrap();
        assert_eq!(
            String::from_utf8(w.into_inner()).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }
}
