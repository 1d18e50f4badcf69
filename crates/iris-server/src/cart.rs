//! A small CART decision-tree classifier (Gini impurity, axis-aligned binary splits).
//!
//! Written by hand rather than taken from an ML crate because the service needs the
//! class counts of the leaf a sample lands in (its confidence is the predicted class's
//! share of that leaf), and because training must be deterministic: ties between
//! equally good splits go to the lower feature index, then to the lower threshold.

/// Training knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeParams {
    /// Longest root-to-leaf path, in splits (0 = a single leaf).
    pub max_depth: usize,
    /// Nodes with fewer samples than this become leaves.
    pub min_samples_split: usize,
}

/// Why a tree could not be trained.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FitError {
    /// No training rows.
    #[error("no training samples")]
    Empty,
    /// Feature rows and labels differ in number.
    #[error("{features} feature rows but {labels} labels")]
    LengthMismatch {
        /// Number of feature rows.
        features: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A label is not a valid class index.
    #[error("row {row}: label {label} is not below the class count {classes}")]
    LabelOutOfRange {
        /// Row index.
        row: usize,
        /// The label found.
        label: usize,
        /// Number of classes.
        classes: usize,
    },
    /// A feature value is NaN or infinite, which no threshold can order.
    #[error("row {row}: feature {feature} is not finite")]
    NonFinite {
        /// Row index.
        row: usize,
        /// Feature index.
        feature: usize,
    },
}

/// Where a sample ends up: the predicted class and the training class counts of its leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafPrediction<const C: usize> {
    /// The majority class of the leaf (lowest index on a tie).
    pub class: usize,
    /// Training samples of each class that reached the leaf.
    pub counts: [u32; C],
}

impl<const C: usize> LeafPrediction<C> {
    /// Share of the leaf's training samples that belong to the predicted class.
    pub fn confidence(&self) -> f64 {
        let total: u32 = self.counts.iter().sum();
        // A leaf always holds at least one sample; guard anyway so this can never divide by 0.
        if total == 0 {
            return 0.0;
        }
        f64::from(self.counts[self.class]) / f64::from(total)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node<const C: usize> {
    Leaf {
        counts: [u32; C],
    },
    /// Samples with `x[feature] <= threshold` go left, the others right.
    Split {
        feature: usize,
        threshold: f64,
        left: usize,
        right: usize,
    },
}

/// A trained tree over `F` numeric features and `C` classes.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionTree<const F: usize, const C: usize> {
    /// Arena of nodes; the root is at index 0.
    nodes: Vec<Node<C>>,
}

/// The best split found for one node.
struct SplitChoice {
    feature: usize,
    threshold: f64,
    /// Weighted Gini impurity of the two children.
    impurity: f64,
}

impl<const F: usize, const C: usize> DecisionTree<F, C> {
    /// Grows a tree greedily: at each node the split with the lowest weighted child Gini
    /// impurity, as long as it lowers the node's impurity and the limits allow.
    pub fn fit(
        features: &[[f64; F]],
        labels: &[usize],
        params: TreeParams,
    ) -> Result<Self, FitError> {
        validate(features, labels, C)?;
        let mut tree = DecisionTree { nodes: Vec::new() };
        let mut rows: Vec<usize> = (0..features.len()).collect();
        let grower = Grower {
            features,
            labels,
            params,
        };
        grower.grow(&mut tree.nodes, &mut rows, 0);
        Ok(tree)
    }

    /// Walks `x` down to its leaf.
    pub fn predict(&self, x: &[f64; F]) -> LeafPrediction<C> {
        let mut index = 0;
        loop {
            match &self.nodes[index] {
                Node::Leaf { counts } => {
                    return LeafPrediction {
                        class: majority(counts),
                        counts: *counts,
                    };
                }
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    index = if x[*feature] <= *threshold {
                        *left
                    } else {
                        *right
                    };
                }
            }
        }
    }

    /// Length of the longest root-to-leaf path, in splits.
    pub fn depth(&self) -> usize {
        self.depth_below(0)
    }

    /// Number of leaves.
    pub fn leaf_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|node| matches!(node, Node::Leaf { .. }))
            .count()
    }

    fn depth_below(&self, index: usize) -> usize {
        match &self.nodes[index] {
            Node::Leaf { .. } => 0,
            Node::Split { left, right, .. } => {
                1 + self.depth_below(*left).max(self.depth_below(*right))
            }
        }
    }
}

fn validate<const F: usize>(
    features: &[[f64; F]],
    labels: &[usize],
    classes: usize,
) -> Result<(), FitError> {
    if features.len() != labels.len() {
        return Err(FitError::LengthMismatch {
            features: features.len(),
            labels: labels.len(),
        });
    }
    if features.is_empty() {
        return Err(FitError::Empty);
    }
    for (row, (x, &label)) in features.iter().zip(labels).enumerate() {
        if label >= classes {
            return Err(FitError::LabelOutOfRange {
                row,
                label,
                classes,
            });
        }
        if let Some(feature) = x.iter().position(|value| !value.is_finite()) {
            return Err(FitError::NonFinite { row, feature });
        }
    }
    Ok(())
}

/// The training data and limits, borrowed while the tree grows.
struct Grower<'a, const F: usize> {
    features: &'a [[f64; F]],
    labels: &'a [usize],
    params: TreeParams,
}

impl<const F: usize> Grower<'_, F> {
    /// Adds the subtree for `rows` to `nodes` and returns its root's index.
    fn grow<const C: usize>(
        &self,
        nodes: &mut Vec<Node<C>>,
        rows: &mut [usize],
        depth: usize,
    ) -> usize {
        let counts = self.class_counts::<C>(rows);
        let index = nodes.len();
        nodes.push(Node::Leaf { counts });

        let splittable = depth < self.params.max_depth
            && rows.len() >= self.params.min_samples_split.max(2)
            && gini(&counts) > 0.0;
        if !splittable {
            return index;
        }
        let Some(choice) = self.best_split::<C>(rows) else {
            return index;
        };
        // A split that does not lower impurity only adds depth, so keep the leaf.
        if choice.impurity >= gini(&counts) {
            return index;
        }
        self.sort_by_feature(rows, choice.feature);
        let left_len = rows
            .iter()
            .take_while(|&&row| self.features[row][choice.feature] <= choice.threshold)
            .count();
        let (left_rows, right_rows) = rows.split_at_mut(left_len);
        let left = self.grow(nodes, left_rows, depth + 1);
        let right = self.grow(nodes, right_rows, depth + 1);
        nodes[index] = Node::Split {
            feature: choice.feature,
            threshold: choice.threshold,
            left,
            right,
        };
        index
    }

    fn class_counts<const C: usize>(&self, rows: &[usize]) -> [u32; C] {
        let mut counts = [0u32; C];
        for &row in rows {
            counts[self.labels[row]] += 1;
        }
        counts
    }

    fn sort_by_feature(&self, rows: &mut [usize], feature: usize) {
        // Stable sort keeps equal values in row order, so training is reproducible.
        rows.sort_by(|&a, &b| self.features[a][feature].total_cmp(&self.features[b][feature]));
    }

    /// Scans every feature and every midpoint between distinct neighbouring values.
    fn best_split<const C: usize>(&self, rows: &mut [usize]) -> Option<SplitChoice> {
        let total = self.class_counts::<C>(rows);
        let n = rows.len() as f64;
        let mut best: Option<SplitChoice> = None;
        for feature in 0..F {
            self.sort_by_feature(rows, feature);
            let mut left = [0u32; C];
            for position in 0..rows.len() - 1 {
                left[self.labels[rows[position]]] += 1;
                let here = self.features[rows[position]][feature];
                let next = self.features[rows[position + 1]][feature];
                if here >= next {
                    continue;
                }
                let mut right = total;
                for (r, l) in right.iter_mut().zip(&left) {
                    *r -= l;
                }
                let left_n = (position + 1) as f64;
                let impurity = (left_n * gini(&left) + (n - left_n) * gini(&right)) / n;
                // Strictly better by a margin, so rounding noise never reorders equal
                // splits: the first one found (lower feature, lower threshold) wins.
                if best
                    .as_ref()
                    .is_none_or(|best| impurity < best.impurity - 1e-12)
                {
                    best = Some(SplitChoice {
                        feature,
                        threshold: midpoint(here, next),
                        impurity,
                    });
                }
            }
        }
        best
    }
}

/// A threshold strictly between `low` and `high` when one exists, else `low` (adjacent
/// floats), so `low` always goes left and `high` right.
fn midpoint(low: f64, high: f64) -> f64 {
    let mid = low + (high - low) / 2.0;
    if mid < high { mid } else { low }
}

/// Gini impurity: the chance that two draws (with replacement) differ in class.
fn gini<const C: usize>(counts: &[u32; C]) -> f64 {
    let total: u32 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let total = f64::from(total);
    1.0 - counts
        .iter()
        .map(|&count| (f64::from(count) / total).powi(2))
        .sum::<f64>()
}

/// Index of the largest count; the lowest index wins a tie.
fn majority<const C: usize>(counts: &[u32; C]) -> usize {
    let mut best = 0;
    for (class, &count) in counts.iter().enumerate() {
        if count > counts[best] {
            best = class;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEEP: TreeParams = TreeParams {
        max_depth: 10,
        min_samples_split: 2,
    };

    #[test]
    fn separable_data_gets_a_single_split_at_the_midpoint() {
        let x = [[1.0], [2.0], [3.0], [4.0]];
        let y = [0, 0, 1, 1];
        let tree = DecisionTree::<1, 2>::fit(&x, &y, DEEP).unwrap();
        assert_eq!(tree.depth(), 1);
        assert_eq!(tree.leaf_count(), 2);
        assert!(
            matches!(tree.nodes[0], Node::Split { feature: 0, threshold, .. } if threshold == 2.5)
        );
        assert_eq!(tree.predict(&[2.5]).class, 0);
        assert_eq!(tree.predict(&[2.6]).class, 1);
    }

    #[test]
    fn leaf_counts_give_the_confidence() {
        // Feature 0 cannot separate the last two rows, so one leaf stays mixed.
        let x = [[1.0], [1.0], [5.0], [5.0], [5.0]];
        let y = [0, 0, 1, 1, 0];
        let tree = DecisionTree::<1, 2>::fit(&x, &y, DEEP).unwrap();
        let mixed = tree.predict(&[5.0]);
        assert_eq!(mixed.counts, [1, 2]);
        assert_eq!(mixed.class, 1);
        assert!((mixed.confidence() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(tree.predict(&[0.0]).confidence(), 1.0);
    }

    #[test]
    fn max_depth_limits_the_tree() {
        let x: Vec<[f64; 1]> = (0..16).map(|i| [f64::from(i)]).collect();
        let y: Vec<usize> = (0..16).map(|i| i % 2).collect();
        for max_depth in 0..4 {
            let params = TreeParams {
                max_depth,
                min_samples_split: 2,
            };
            let tree = DecisionTree::<1, 2>::fit(&x, &y, params).unwrap();
            assert!(
                tree.depth() <= max_depth,
                "depth {} > {max_depth}",
                tree.depth()
            );
        }
    }

    #[test]
    fn equally_good_splits_prefer_the_lower_feature() {
        // Both features separate the classes perfectly.
        let x = [[0.0, 0.0], [1.0, 1.0]];
        let y = [0, 1];
        let tree = DecisionTree::<2, 2>::fit(&x, &y, DEEP).unwrap();
        assert!(matches!(tree.nodes[0], Node::Split { feature: 0, .. }));
    }

    #[test]
    fn majority_ties_go_to_the_lower_class() {
        assert_eq!(majority(&[2, 2, 1]), 0);
        assert_eq!(majority(&[0, 3, 3]), 1);
    }

    #[test]
    fn identical_rows_stay_one_leaf() {
        let x = [[1.0], [1.0]];
        let y = [0, 1];
        let tree = DecisionTree::<1, 2>::fit(&x, &y, DEEP).unwrap();
        assert_eq!(tree.leaf_count(), 1);
        assert_eq!(tree.predict(&[1.0]).confidence(), 0.5);
    }

    #[test]
    fn bad_training_data_is_rejected() {
        let fit = |x: &[[f64; 1]], y: &[usize]| DecisionTree::<1, 2>::fit(x, y, DEEP).map(|_| ());
        assert_eq!(fit(&[], &[]), Err(FitError::Empty));
        assert_eq!(
            fit(&[[1.0]], &[]),
            Err(FitError::LengthMismatch {
                features: 1,
                labels: 0
            })
        );
        assert_eq!(
            fit(&[[1.0]], &[2]),
            Err(FitError::LabelOutOfRange {
                row: 0,
                label: 2,
                classes: 2
            })
        );
        assert_eq!(
            fit(&[[1.0], [f64::NAN]], &[0, 1]),
            Err(FitError::NonFinite { row: 1, feature: 0 })
        );
    }

    #[test]
    fn midpoint_of_adjacent_floats_falls_back_to_the_lower() {
        let low = 1.0_f64;
        let high = f64::from_bits(low.to_bits() + 1);
        assert_eq!(midpoint(low, high), low);
        assert_eq!(midpoint(1.0, 2.0), 1.5);
    }
}
