//! The Iris classifier the service exposes: a depth-3 Gini decision tree trained on the
//! embedded data set at start-up, the same model the original scikit-learn app served.

use serde::Serialize;

use crate::cart::{DecisionTree, FitError, TreeParams};
use crate::dataset::{
    self, DatasetError, FEATURE_COUNT, FEATURE_NAMES, LabeledSample, Measurements, Species,
};

/// Depth limit of the tree (the original app's `max_depth=3`).
pub const MAX_DEPTH: usize = 3;

const TREE_PARAMS: TreeParams = TreeParams {
    max_depth: MAX_DEPTH,
    min_samples_split: 2,
};

/// Why the model could not be trained.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The embedded data set did not parse.
    #[error("reading the embedded Iris data set")]
    Dataset(#[from] DatasetError),
    /// The tree could not be fitted.
    #[error("fitting the decision tree")]
    Fit(#[from] FitError),
}

/// A prediction for one flower.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prediction {
    /// The predicted species.
    pub species: Species,
    /// The predicted species' share of the training samples in the leaf reached (0..=1).
    pub confidence: f64,
}

/// What `GET /model/info` reports about the trained model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Always `"DecisionTreeClassifier"`, the scikit-learn name clients know.
    pub model_type: &'static str,
    /// Split criterion.
    pub criterion: &'static str,
    /// Configured depth limit.
    pub max_depth: usize,
    /// Depth the trained tree actually reached.
    pub tree_depth: usize,
    /// Number of leaves.
    pub n_leaves: usize,
    /// Input feature names, in order.
    pub feature_names: [&'static str; FEATURE_COUNT],
    /// Class names, in class-index order.
    pub classes: [&'static str; 3],
    /// Number of rows trained on.
    pub training_samples: usize,
    /// Share of training rows the tree classifies correctly.
    pub training_accuracy: f64,
}

/// A trained Iris classifier.
#[derive(Debug, Clone)]
pub struct IrisModel {
    tree: DecisionTree<FEATURE_COUNT, 3>,
    training_samples: usize,
    training_accuracy: f64,
}

impl IrisModel {
    /// Trains on the data set embedded in the binary (deterministic, well under 1 ms).
    pub fn train_embedded() -> Result<Self, ModelError> {
        Self::train(&dataset::embedded()?)
    }

    /// Trains a depth-3 Gini tree on `samples`.
    pub fn train(samples: &[LabeledSample]) -> Result<Self, ModelError> {
        let features: Vec<[f64; FEATURE_COUNT]> =
            samples.iter().map(|s| s.measurements.as_array()).collect();
        let labels: Vec<usize> = samples.iter().map(|s| s.species.index()).collect();
        let tree = DecisionTree::fit(&features, &labels, TREE_PARAMS)?;
        let correct = features
            .iter()
            .zip(&labels)
            .filter(|(x, label)| tree.predict(x).class == **label)
            .count();
        Ok(IrisModel {
            tree,
            training_samples: samples.len(),
            training_accuracy: correct as f64 / samples.len() as f64,
        })
    }

    /// Classifies one flower.
    pub fn predict(&self, measurements: &Measurements) -> Prediction {
        let leaf = self.tree.predict(&measurements.as_array());
        Prediction {
            // The tree only ever holds the three Iris classes, so the index is valid.
            species: Species::from_index(leaf.class).unwrap_or(Species::Setosa),
            confidence: leaf.confidence(),
        }
    }

    /// Share of training rows classified correctly.
    pub fn training_accuracy(&self) -> f64 {
        self.training_accuracy
    }

    /// Facts about the model for `GET /model/info`.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            model_type: "DecisionTreeClassifier",
            criterion: "gini",
            max_depth: MAX_DEPTH,
            tree_depth: self.tree.depth(),
            n_leaves: self.tree.leaf_count(),
            feature_names: FEATURE_NAMES,
            classes: Species::ALL.map(Species::name),
            training_samples: self.training_samples,
            training_accuracy: self.training_accuracy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> IrisModel {
        IrisModel::train_embedded().expect("model trains")
    }

    fn flower(values: [f64; 4]) -> Measurements {
        Measurements::from_array(values)
    }

    #[test]
    fn training_accuracy_is_at_least_95_percent() {
        let model = model();
        assert!(
            model.training_accuracy() >= 0.95,
            "{}",
            model.training_accuracy()
        );
        // scikit-learn's depth-3 tree on the same data misclassifies 4 of 150 rows.
        assert!((model.training_accuracy() - 146.0 / 150.0).abs() < 1e-12);
    }

    #[test]
    fn tree_has_depth_three_and_reports_it() {
        let info = model().info();
        assert_eq!(info.tree_depth, 3);
        assert_eq!(info.max_depth, 3);
        assert_eq!(info.training_samples, 150);
        assert_eq!(info.classes, ["setosa", "versicolor", "virginica"]);
    }

    #[test]
    fn known_flowers_get_known_species() {
        let model = model();
        let setosa = model.predict(&flower([5.1, 3.5, 1.4, 0.2]));
        assert_eq!(setosa.species, Species::Setosa);
        assert_eq!(setosa.confidence, 1.0);
        // Lands in the large versicolor leaf (47 versicolor, 1 virginica).
        let versicolor = model.predict(&flower([6.0, 2.9, 4.5, 1.5]));
        assert_eq!(versicolor.species, Species::Versicolor);
        assert!((versicolor.confidence - 47.0 / 48.0).abs() < 1e-12);
        let virginica = model.predict(&flower([6.7, 3.0, 5.8, 2.2]));
        assert_eq!(virginica.species, Species::Virginica);
        assert_eq!(virginica.confidence, 1.0);
    }

    #[test]
    fn training_is_deterministic() {
        assert_eq!(model().tree, model().tree);
    }
}
