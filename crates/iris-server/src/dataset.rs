//! The Iris data set (Fisher, 1936; public domain), shipped inside the binary.
//!
//! The rows follow the UCI copy with the two known transcription errors of that copy
//! corrected (rows 35 and 38), i.e. the values scikit-learn's `load_iris` returns.

use std::fmt;

use serde::Serialize;

/// The CSV that ships in the binary: a header line, then 150 rows of
/// `sepal_length,sepal_width,petal_length,petal_width,species` (cm).
const EMBEDDED_CSV: &str = include_str!("../data/iris.csv");

/// Number of measured features per flower.
pub const FEATURE_COUNT: usize = 4;

/// Feature names, in the order of [`Measurements::as_array`] and of the CSV columns.
pub const FEATURE_NAMES: [&str; FEATURE_COUNT] =
    ["sepal_length", "sepal_width", "petal_length", "petal_width"];

/// One of the three Iris species; the index order is the class order of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Species {
    /// Iris setosa.
    Setosa,
    /// Iris versicolor.
    Versicolor,
    /// Iris virginica.
    Virginica,
}

impl Species {
    /// Every species, in class-index order.
    pub const ALL: [Species; 3] = [Species::Setosa, Species::Versicolor, Species::Virginica];

    /// The class index the model uses for this species.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The species with class index `index`, if there is one.
    pub fn from_index(index: usize) -> Option<Species> {
        Self::ALL.get(index).copied()
    }

    /// The lowercase name used in the CSV and in JSON responses.
    pub fn name(self) -> &'static str {
        match self {
            Species::Setosa => "setosa",
            Species::Versicolor => "versicolor",
            Species::Virginica => "virginica",
        }
    }

    fn from_name(name: &str) -> Option<Species> {
        Self::ALL.into_iter().find(|species| species.name() == name)
    }
}

impl fmt::Display for Species {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The four measurements of one flower, in centimetres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurements {
    /// Sepal length (cm).
    pub sepal_length: f64,
    /// Sepal width (cm).
    pub sepal_width: f64,
    /// Petal length (cm).
    pub petal_length: f64,
    /// Petal width (cm).
    pub petal_width: f64,
}

impl Measurements {
    /// The measurements as a feature vector, in [`FEATURE_NAMES`] order.
    pub fn as_array(&self) -> [f64; FEATURE_COUNT] {
        [
            self.sepal_length,
            self.sepal_width,
            self.petal_length,
            self.petal_width,
        ]
    }

    /// Builds measurements from a feature vector in [`FEATURE_NAMES`] order.
    pub fn from_array(values: [f64; FEATURE_COUNT]) -> Self {
        let [sepal_length, sepal_width, petal_length, petal_width] = values;
        Measurements {
            sepal_length,
            sepal_width,
            petal_length,
            petal_width,
        }
    }
}

/// One row of the data set: a flower and its species.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabeledSample {
    /// What was measured.
    pub measurements: Measurements,
    /// What the botanist said it is.
    pub species: Species,
}

/// Why the embedded CSV could not be read (a build defect, caught by the unit tests).
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The CSV has no header line.
    #[error("iris.csv is empty")]
    Empty,
    /// The header names other columns than expected.
    #[error("iris.csv header is {found:?}, expected {expected:?}")]
    Header {
        /// The header found.
        found: String,
        /// The header expected.
        expected: String,
    },
    /// A row does not have five comma-separated fields.
    #[error("iris.csv line {line}: expected 5 fields, found {found}")]
    FieldCount {
        /// 1-based line number.
        line: usize,
        /// Number of fields found.
        found: usize,
    },
    /// A measurement is not a number.
    #[error("iris.csv line {line}: {column} value {value:?} is not a number")]
    Number {
        /// 1-based line number.
        line: usize,
        /// Column name.
        column: &'static str,
        /// The text that failed to parse.
        value: String,
    },
    /// The species column holds an unknown name.
    #[error("iris.csv line {line}: unknown species {value:?}")]
    Species {
        /// 1-based line number.
        line: usize,
        /// The unknown name.
        value: String,
    },
}

/// Parses the data set embedded in the binary.
pub fn embedded() -> Result<Vec<LabeledSample>, DatasetError> {
    parse_csv(EMBEDDED_CSV)
}

/// Parses Iris rows in the embedded CSV's format (header required, blank lines skipped).
pub fn parse_csv(text: &str) -> Result<Vec<LabeledSample>, DatasetError> {
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().ok_or(DatasetError::Empty)?;
    let expected = format!("{},species", FEATURE_NAMES.join(","));
    if header.trim() != expected {
        return Err(DatasetError::Header {
            found: header.to_owned(),
            expected,
        });
    }
    lines
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| parse_row(index + 1, line))
        .collect()
}

fn parse_row(line: usize, text: &str) -> Result<LabeledSample, DatasetError> {
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    let [a, b, c, d, species] = fields.as_slice() else {
        return Err(DatasetError::FieldCount {
            line,
            found: fields.len(),
        });
    };
    let mut values = [0.0; FEATURE_COUNT];
    for ((slot, raw), column) in values.iter_mut().zip([a, b, c, d]).zip(FEATURE_NAMES) {
        *slot = raw.parse().map_err(|_| DatasetError::Number {
            line,
            column,
            value: (*raw).to_owned(),
        })?;
    }
    let species = Species::from_name(species).ok_or_else(|| DatasetError::Species {
        line,
        value: (*species).to_owned(),
    })?;
    Ok(LabeledSample {
        measurements: Measurements::from_array(values),
        species,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_data_has_fifty_rows_per_species() {
        let rows = embedded().expect("embedded CSV parses");
        assert_eq!(rows.len(), 150);
        for species in Species::ALL {
            let count = rows.iter().filter(|row| row.species == species).count();
            assert_eq!(count, 50, "{species}");
        }
    }

    /// Per-class means as published with the data set (e.g. in scikit-learn's and
    /// UCI's descriptions); a mistyped row would shift one of them.
    #[test]
    fn embedded_data_matches_published_class_means() {
        let rows = embedded().expect("embedded CSV parses");
        let published = [
            (Species::Setosa, [5.006, 3.428, 1.462, 0.246]),
            (Species::Versicolor, [5.936, 2.770, 4.260, 1.326]),
            (Species::Virginica, [6.588, 2.974, 5.552, 2.026]),
        ];
        for (species, means) in published {
            let class: Vec<_> = rows.iter().filter(|row| row.species == species).collect();
            for (feature, expected) in means.iter().enumerate() {
                let sum: f64 = class
                    .iter()
                    .map(|row| row.measurements.as_array()[feature])
                    .sum();
                let mean = sum / class.len() as f64;
                assert!(
                    (mean - expected).abs() < 5e-4,
                    "{species} {}: mean {mean}, published {expected}",
                    FEATURE_NAMES[feature]
                );
            }
        }
    }

    #[test]
    fn parse_rejects_bad_rows_with_line_numbers() {
        let header = "sepal_length,sepal_width,petal_length,petal_width,species\n";
        let err = parse_csv(&format!("{header}5.1,3.5,1.4,0.2\n")).unwrap_err();
        assert!(matches!(
            err,
            DatasetError::FieldCount { line: 2, found: 4 }
        ));
        let err = parse_csv(&format!("{header}5.1,x,1.4,0.2,setosa\n")).unwrap_err();
        assert!(matches!(
            err,
            DatasetError::Number {
                line: 2,
                column: "sepal_width",
                ..
            }
        ));
        let err = parse_csv(&format!("{header}5.1,3.5,1.4,0.2,rose\n")).unwrap_err();
        assert!(matches!(err, DatasetError::Species { line: 2, .. }));
        assert!(matches!(parse_csv(""), Err(DatasetError::Empty)));
        assert!(matches!(
            parse_csv("a,b\n"),
            Err(DatasetError::Header { .. })
        ));
    }

    #[test]
    fn species_index_round_trips() {
        for species in Species::ALL {
            assert_eq!(Species::from_index(species.index()), Some(species));
        }
        assert_eq!(Species::from_index(3), None);
    }
}
