//! A PromQL evaluator over the served series (`series.rs`).
//!
//! A query is first *planned*: the parsed expression becomes a [`Node`] tree
//! (anything unsupported is refused here, before any read) and its
//! selectors are listed with the time span each needs. Then every selector
//! is read once for the whole query, and the tree is evaluated at each step
//! like Prometheus does (`query_range` = independent instant evaluations).
//!
//! Semantics follow Prometheus 3: range selectors and the 5-minute lookback
//! of instant selectors are left-open (`(t - range, t]`), `rate`/`increase`
//! extrapolate like `extrapolatedRate`, binary operators match like
//! `VectorBinop` (one-to-one, `on`/`ignoring`, `group_left`/`group_right`),
//! arithmetic and `bool` comparisons drop the metric name, functions and
//! aggregations too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_AVG, T_BOTTOMK, T_COUNT, T_DIV, T_EQLC, T_GROUP, T_GTE, T_GTR, T_LAND, T_LOR,
    T_LSS, T_LTE, T_LUNLESS, T_MAX, T_MIN, T_MOD, T_MUL, T_NEQ, T_POW, T_QUANTILE, T_STDDEV,
    T_STDVAR, T_SUB, T_SUM, T_TOPK,
};
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Call, Expr, LabelModifier, Offset, VectorMatchCardinality,
    VectorSelector,
};

use super::PromError;
use super::functions::{
    Bucket, Point, bucket_quantile, extrapolated_rate, instant_value, quantile,
};
use super::series::{BUCKET_LABEL, METRIC_NAME, Series};
use crate::store::Labels;

/// Prometheus' default lookback delta for instant selectors.
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// A planned expression.
#[derive(Debug)]
pub enum Node {
    Number(f64),
    String(String),
    /// An instant selector: selector index, offset.
    Vector {
        selector: usize,
        offset_ms: i64,
    },
    /// A range selector.
    Matrix {
        selector: usize,
        offset_ms: i64,
        range_ms: i64,
    },
    Neg(Box<Node>),
    Binary(Box<Binary>),
    Aggregate(Box<Aggregate>),
    Call(Func, Vec<Node>),
}

/// What a selector reads: its matchers, and how far before (and after) an
/// evaluation time its samples may lie.
#[derive(Debug)]
pub struct SelectorSpec {
    pub matchers: Vec<Matcher>,
    /// The oldest sample needed is `t - offset - span`.
    pub span_ms: i64,
    pub offset_ms: i64,
}

#[derive(Debug)]
pub struct Binary {
    op: BinOp,
    lhs: Node,
    rhs: Node,
    return_bool: bool,
    matching: Matching,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

#[derive(Debug, Default)]
struct Matching {
    card: Card,
    /// `on(...)` (true) or `ignoring(...)` (false) and its labels.
    on: bool,
    labels: Vec<String>,
    /// `group_left(...)`/`group_right(...)` labels.
    include: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Card {
    #[default]
    OneToOne,
    ManyToOne,
    OneToMany,
}

#[derive(Debug)]
pub struct Aggregate {
    op: AggOp,
    expr: Node,
    param: Option<Node>,
    /// `by` (true) or `without` (false), and labels; `None`: everything in
    /// one group.
    grouping: Option<(bool, Vec<String>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
}

/// Supported functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    AvgOverTime,
    SumOverTime,
    MinOverTime,
    MaxOverTime,
    CountOverTime,
    LastOverTime,
    HistogramQuantile,
    Abs,
    Ceil,
    Floor,
    Exp,
    Sqrt,
    Ln,
    Log2,
    Log10,
    Round,
    ClampMin,
    ClampMax,
    Clamp,
    Vector,
    Scalar,
    Time,
    Sort,
    SortDesc,
}

impl Func {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "rate" => Self::Rate,
            "increase" => Self::Increase,
            "delta" => Self::Delta,
            "irate" => Self::Irate,
            "idelta" => Self::Idelta,
            "avg_over_time" => Self::AvgOverTime,
            "sum_over_time" => Self::SumOverTime,
            "min_over_time" => Self::MinOverTime,
            "max_over_time" => Self::MaxOverTime,
            "count_over_time" => Self::CountOverTime,
            "last_over_time" => Self::LastOverTime,
            "histogram_quantile" => Self::HistogramQuantile,
            "abs" => Self::Abs,
            "ceil" => Self::Ceil,
            "floor" => Self::Floor,
            "exp" => Self::Exp,
            "sqrt" => Self::Sqrt,
            "ln" => Self::Ln,
            "log2" => Self::Log2,
            "log10" => Self::Log10,
            "round" => Self::Round,
            "clamp_min" => Self::ClampMin,
            "clamp_max" => Self::ClampMax,
            "clamp" => Self::Clamp,
            "vector" => Self::Vector,
            "scalar" => Self::Scalar,
            "time" => Self::Time,
            "sort" => Self::Sort,
            "sort_desc" => Self::SortDesc,
            _ => return None,
        })
    }

    fn takes_range(self) -> bool {
        matches!(
            self,
            Self::Rate
                | Self::Increase
                | Self::Delta
                | Self::Irate
                | Self::Idelta
                | Self::AvgOverTime
                | Self::SumOverTime
                | Self::MinOverTime
                | Self::MaxOverTime
                | Self::CountOverTime
                | Self::LastOverTime
        )
    }
}

/// The supported subset, for error messages.
pub const SUPPORTED: &str = "number literals, instant and range selectors (=, !=, =~, !~, \
     offset), + - * / % ^ atan2, comparisons (with bool), and/or/unless, on/ignoring, \
     group_left/group_right, sum/avg/min/max/count/group/stddev/stdvar/topk/bottomk/quantile \
     by/without, rate, increase, delta, irate, idelta, avg/sum/min/max/count/last_over_time, \
     histogram_quantile, abs, ceil, floor, exp, sqrt, ln, log2, log10, round, clamp, clamp_min, \
     clamp_max, vector, scalar, time, sort, sort_desc";

fn unsupported(what: impl std::fmt::Display) -> PromError {
    PromError::BadData(format!(
        "unsupported PromQL: {what} (weft supports {SUPPORTED})"
    ))
}

fn duration_ms(duration: &std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(offset: Option<&Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(duration)) => duration_ms(duration),
        Some(Offset::Neg(duration)) => -duration_ms(duration),
    }
}

/// Turns a parsed expression into a [`Node`], listing its selectors.
pub fn plan(expr: &Expr, selectors: &mut Vec<SelectorSpec>) -> Result<Node, PromError> {
    Ok(match expr {
        Expr::NumberLiteral(number) => Node::Number(number.val),
        Expr::StringLiteral(string) => Node::String(string.val.clone()),
        Expr::Paren(paren) => plan(&paren.expr, selectors)?,
        Expr::Unary(unary) => Node::Neg(Box::new(plan(&unary.expr, selectors)?)),
        Expr::VectorSelector(selector) => {
            let offset_ms = offset_ms(selector.offset.as_ref());
            let matchers = matchers(selector)?;
            selectors.push(SelectorSpec {
                matchers,
                span_ms: LOOKBACK_MS,
                offset_ms,
            });
            Node::Vector {
                selector: selectors.len() - 1,
                offset_ms,
            }
        }
        Expr::MatrixSelector(matrix) => {
            let offset_ms = offset_ms(matrix.vs.offset.as_ref());
            let range_ms = duration_ms(&matrix.range);
            selectors.push(SelectorSpec {
                matchers: matchers(&matrix.vs)?,
                span_ms: range_ms,
                offset_ms,
            });
            Node::Matrix {
                selector: selectors.len() - 1,
                offset_ms,
                range_ms,
            }
        }
        Expr::Binary(binary) => plan_binary(binary, selectors)?,
        Expr::Aggregate(aggregate) => plan_aggregate(aggregate, selectors)?,
        Expr::Call(call) => plan_call(call, selectors)?,
        Expr::Subquery(_) => return Err(unsupported("subqueries")),
        Expr::Extension(_) => return Err(unsupported("extensions")),
    })
}

fn matchers(selector: &VectorSelector) -> Result<Vec<Matcher>, PromError> {
    if selector.at.is_some() {
        return Err(unsupported("the @ modifier"));
    }
    if !selector.matchers.or_matchers.is_empty() {
        return Err(unsupported("`or` inside label matchers"));
    }
    let mut matchers = selector.matchers.matchers.clone();
    if let Some(name) = &selector.name {
        matchers.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
    }
    Ok(matchers)
}

fn plan_binary(binary: &BinaryExpr, selectors: &mut Vec<SelectorSpec>) -> Result<Node, PromError> {
    let op = match binary.op.id() {
        T_ADD => BinOp::Add,
        T_SUB => BinOp::Sub,
        T_MUL => BinOp::Mul,
        T_DIV => BinOp::Div,
        T_MOD => BinOp::Mod,
        T_POW => BinOp::Pow,
        T_ATAN2 => BinOp::Atan2,
        T_EQLC => BinOp::Eq,
        T_NEQ => BinOp::Ne,
        T_GTR => BinOp::Gt,
        T_LSS => BinOp::Lt,
        T_GTE => BinOp::Ge,
        T_LTE => BinOp::Le,
        T_LAND => BinOp::And,
        T_LOR => BinOp::Or,
        T_LUNLESS => BinOp::Unless,
        _ => return Err(unsupported(format!("the operator {}", binary.op))),
    };
    let mut matching = Matching::default();
    let mut return_bool = false;
    if let Some(modifier) = &binary.modifier {
        if modifier.fill_values.lhs.is_some() || modifier.fill_values.rhs.is_some() {
            return Err(unsupported("fill modifiers"));
        }
        return_bool = modifier.return_bool;
        match &modifier.matching {
            Some(LabelModifier::Include(labels)) => {
                matching.on = true;
                matching.labels = labels.labels.clone();
            }
            Some(LabelModifier::Exclude(labels)) => matching.labels = labels.labels.clone(),
            None => {}
        }
        match &modifier.card {
            VectorMatchCardinality::ManyToOne(labels) => {
                matching.card = Card::ManyToOne;
                matching.include = labels.labels.clone();
            }
            VectorMatchCardinality::OneToMany(labels) => {
                matching.card = Card::OneToMany;
                matching.include = labels.labels.clone();
            }
            VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany => {}
        }
    }
    Ok(Node::Binary(Box::new(Binary {
        op,
        lhs: plan(&binary.lhs, selectors)?,
        rhs: plan(&binary.rhs, selectors)?,
        return_bool,
        matching,
    })))
}

fn plan_aggregate(
    aggregate: &AggregateExpr,
    selectors: &mut Vec<SelectorSpec>,
) -> Result<Node, PromError> {
    let op = match aggregate.op.id() {
        T_SUM => AggOp::Sum,
        T_AVG => AggOp::Avg,
        T_MIN => AggOp::Min,
        T_MAX => AggOp::Max,
        T_COUNT => AggOp::Count,
        T_GROUP => AggOp::Group,
        T_STDDEV => AggOp::Stddev,
        T_STDVAR => AggOp::Stdvar,
        T_TOPK => AggOp::Topk,
        T_BOTTOMK => AggOp::Bottomk,
        T_QUANTILE => AggOp::Quantile,
        _ => return Err(unsupported(format!("the aggregation {}", aggregate.op))),
    };
    let grouping = aggregate.modifier.as_ref().map(|modifier| match modifier {
        LabelModifier::Include(labels) => (true, labels.labels.clone()),
        LabelModifier::Exclude(labels) => (false, labels.labels.clone()),
    });
    let param = match &aggregate.param {
        Some(param) => Some(plan(param, selectors)?),
        None => None,
    };
    Ok(Node::Aggregate(Box::new(Aggregate {
        op,
        expr: plan(&aggregate.expr, selectors)?,
        param,
        grouping,
    })))
}

fn plan_call(call: &Call, selectors: &mut Vec<SelectorSpec>) -> Result<Node, PromError> {
    let func = Func::from_name(call.func.name)
        .ok_or_else(|| unsupported(format!("the function {}()", call.func.name)))?;
    let mut args = Vec::with_capacity(call.args.args.len());
    for arg in &call.args.args {
        let mut arg: &Expr = arg;
        while let Expr::Paren(paren) = arg {
            arg = &paren.expr;
        }
        args.push(plan(arg, selectors)?);
    }
    if func.takes_range() && !matches!(args.first(), Some(Node::Matrix { .. })) {
        return Err(unsupported(format!(
            "{}() of anything but a range selector",
            call.func.name
        )));
    }
    Ok(Node::Call(func, args))
}

/// A vector sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Arc<Labels>,
    pub value: f64,
}

/// The value of an expression at one time.
#[derive(Debug)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<Sample>),
    /// Raw samples (an instant query of a range selector).
    Matrix(Vec<Series>),
    String(String),
}

/// Evaluates planned nodes over the series read for its selectors.
pub struct Evaluator<'a> {
    /// The series of each selector (by index), samples sorted by time.
    data: &'a [Vec<Series>],
    /// The name-less labels of each series, by the address of its labels
    /// (the series outlive the evaluator, so addresses are unique).
    bare: HashMap<usize, Arc<Labels>>,
    /// Per selector: its series carry several metric names.
    several_names: Vec<bool>,
}

impl<'a> Evaluator<'a> {
    pub fn new(data: &'a [Vec<Series>]) -> Self {
        let bare = data
            .iter()
            .flatten()
            .map(|series| (Arc::as_ptr(&series.labels) as usize, series.bare.clone()))
            .collect();
        let several_names = data
            .iter()
            .map(|series| several_names(series.iter().map(|one| &one.labels)))
            .collect();
        Self {
            data,
            bare,
            several_names,
        }
    }

    /// `labels` without `__name__`, shared when they are a selector's.
    fn without_name(&self, labels: &Arc<Labels>) -> Arc<Labels> {
        if let Some(bare) = self.bare.get(&(Arc::as_ptr(labels) as usize)) {
            return bare.clone();
        }
        without_name(labels)
    }
}

fn without_name(labels: &Arc<Labels>) -> Arc<Labels> {
    if labels.contains_key(METRIC_NAME) {
        let mut labels = Labels::clone(labels);
        labels.remove(METRIC_NAME);
        Arc::new(labels)
    } else {
        labels.clone()
    }
}

fn execution(message: impl Into<String>) -> PromError {
    PromError::Execution(message.into())
}

/// Whether samples carry two different metric names (only then can
/// dropping the name make two label sets equal).
fn several_names<'a>(mut labels: impl Iterator<Item = &'a Arc<Labels>>) -> bool {
    let mut first: Option<&String> = None;
    labels.any(|labels| match (labels.get(METRIC_NAME), first) {
        (Some(name), Some(seen)) => name != seen,
        (Some(name), None) => {
            first = Some(name);
            false
        }
        (None, _) => false,
    })
}

/// Prometheus refuses a function result with two equal label sets (the
/// inputs had `several_names`).
fn ensure_unique(samples: &[Sample]) -> Result<(), PromError> {
    let mut seen = HashSet::with_capacity(samples.len());
    for sample in samples {
        if !seen.insert(sample.labels.as_ref()) {
            return Err(execution(
                "vector cannot contain metrics with the same labelset",
            ));
        }
    }
    Ok(())
}

impl Evaluator<'_> {
    pub fn eval(&self, node: &Node, t: i64) -> Result<Value, PromError> {
        Ok(match node {
            Node::Number(value) => Value::Scalar(*value),
            Node::String(value) => Value::String(value.clone()),
            Node::Vector {
                selector,
                offset_ms,
            } => Value::Vector(self.instant(*selector, t - offset_ms)),
            Node::Matrix {
                selector,
                offset_ms,
                range_ms,
            } => Value::Matrix(
                self.windows(*selector, t - offset_ms, *range_ms)
                    .map(|(labels, samples)| Series::new(Labels::clone(labels), samples.to_vec()))
                    .collect(),
            ),
            Node::Neg(inner) => match self.eval(inner, t)? {
                Value::Scalar(value) => Value::Scalar(-value),
                Value::Vector(samples) => Value::Vector(
                    samples
                        .into_iter()
                        .map(|sample| Sample {
                            labels: self.without_name(&sample.labels),
                            value: -sample.value,
                        })
                        .collect(),
                ),
                _ => return Err(PromError::BadData("unary minus of a non-number".to_owned())),
            },
            Node::Binary(binary) => self.binary(binary, t)?,
            Node::Aggregate(aggregate) => self.aggregate(aggregate, t)?,
            Node::Call(func, args) => self.call(*func, args, t)?,
        })
    }

    /// The latest sample of each series in `(at - lookback, at]`.
    fn instant(&self, selector: usize, at: i64) -> Vec<Sample> {
        let Some(series) = self.data.get(selector) else {
            return Vec::new();
        };
        series
            .iter()
            .filter_map(|one| {
                let index = one.samples.partition_point(|(time, _)| *time <= at);
                let (time, value) = *one.samples.get(index.checked_sub(1)?)?;
                (time > at - LOOKBACK_MS).then(|| Sample {
                    labels: one.labels.clone(),
                    value,
                })
            })
            .collect()
    }

    /// The samples of each series in `(at - range, at]`, series without any
    /// left out.
    fn windows(
        &self,
        selector: usize,
        at: i64,
        range_ms: i64,
    ) -> impl Iterator<Item = (&Arc<Labels>, &[Point])> {
        self.data
            .get(selector)
            .into_iter()
            .flatten()
            .filter_map(move |one| {
                let start = one
                    .samples
                    .partition_point(|(time, _)| *time <= at - range_ms);
                let end = one.samples.partition_point(|(time, _)| *time <= at);
                (end > start).then(|| (&one.labels, &one.samples[start..end]))
            })
    }

    fn scalar_arg(&self, node: Option<&Node>, t: i64) -> Result<f64, PromError> {
        match node.map(|node| self.eval(node, t)).transpose()? {
            Some(Value::Scalar(value)) => Ok(value),
            _ => Err(PromError::BadData("expected a scalar argument".to_owned())),
        }
    }

    fn vector_arg(&self, node: Option<&Node>, t: i64) -> Result<Vec<Sample>, PromError> {
        match node.map(|node| self.eval(node, t)).transpose()? {
            Some(Value::Vector(samples)) => Ok(samples),
            _ => Err(PromError::BadData(
                "expected an instant vector argument".to_owned(),
            )),
        }
    }

    fn call(&self, func: Func, args: &[Node], t: i64) -> Result<Value, PromError> {
        if func.takes_range() {
            let Some(Node::Matrix {
                selector,
                offset_ms,
                range_ms,
            }) = args.first()
            else {
                return Err(unsupported("a range function without a range selector"));
            };
            let at = t - offset_ms;
            let samples: Vec<Sample> = self
                .windows(*selector, at, *range_ms)
                .filter_map(|(labels, points)| {
                    range_function(func, points, at, *range_ms).map(|value| Sample {
                        labels: self.without_name(labels),
                        value,
                    })
                })
                .collect();
            if self.several_names.get(*selector).copied().unwrap_or(false) {
                ensure_unique(&samples)?;
            }
            return Ok(Value::Vector(samples));
        }
        let map = |f: &dyn Fn(f64) -> f64| -> Result<Value, PromError> {
            let input = self.vector_arg(args.first(), t)?;
            let check = several_names(input.iter().map(|sample| &sample.labels));
            let samples: Vec<Sample> = input
                .into_iter()
                .map(|sample| Sample {
                    labels: self.without_name(&sample.labels),
                    value: f(sample.value),
                })
                .collect();
            if check {
                ensure_unique(&samples)?;
            }
            Ok(Value::Vector(samples))
        };
        match func {
            Func::Abs => map(&f64::abs),
            Func::Ceil => map(&f64::ceil),
            Func::Floor => map(&f64::floor),
            Func::Exp => map(&f64::exp),
            Func::Sqrt => map(&f64::sqrt),
            Func::Ln => map(&f64::ln),
            Func::Log2 => map(&f64::log2),
            Func::Log10 => map(&f64::log10),
            Func::Round => {
                let to_nearest = match args.get(1) {
                    Some(node) => self.scalar_arg(Some(node), t)?,
                    None => 1.0,
                };
                let inverse = 1.0 / to_nearest;
                map(&|value| (value * inverse + 0.5).floor() / inverse)
            }
            Func::ClampMin => {
                let min = self.scalar_arg(args.get(1), t)?;
                map(&|value| value.max(min))
            }
            Func::ClampMax => {
                let max = self.scalar_arg(args.get(1), t)?;
                map(&|value| value.min(max))
            }
            Func::Clamp => {
                let min = self.scalar_arg(args.get(1), t)?;
                let max = self.scalar_arg(args.get(2), t)?;
                if max < min {
                    return Ok(Value::Vector(Vec::new()));
                }
                map(&|value| value.max(min).min(max))
            }
            Func::Vector => Ok(Value::Vector(vec![Sample {
                labels: Arc::new(Labels::new()),
                value: self.scalar_arg(args.first(), t)?,
            }])),
            Func::Scalar => {
                let samples = self.vector_arg(args.first(), t)?;
                Ok(Value::Scalar(match samples.as_slice() {
                    [one] => one.value,
                    _ => f64::NAN,
                }))
            }
            Func::Time => Ok(Value::Scalar(t as f64 / 1000.0)),
            Func::Sort | Func::SortDesc => {
                let mut samples = self.vector_arg(args.first(), t)?;
                samples.sort_by(|a, b| {
                    // NaN sorts last either way.
                    match (a.value.is_nan(), b.value.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if func == Func::Sort => a.value.total_cmp(&b.value),
                        _ => b.value.total_cmp(&a.value),
                    }
                });
                Ok(Value::Vector(samples))
            }
            Func::HistogramQuantile => {
                let q = self.scalar_arg(args.first(), t)?;
                let samples = self.vector_arg(args.get(1), t)?;
                Ok(Value::Vector(histogram_quantile(q, samples)))
            }
            _ => Err(unsupported("this function call")),
        }
    }

    fn aggregate(&self, aggregate: &Aggregate, t: i64) -> Result<Value, PromError> {
        let param = match &aggregate.param {
            Some(node) => Some(self.scalar_arg(Some(node), t)?),
            None => None,
        };
        let samples = match self.eval(&aggregate.expr, t)? {
            Value::Vector(samples) => samples,
            _ => {
                return Err(PromError::BadData(
                    "aggregations apply to instant vectors".to_owned(),
                ));
            }
        };
        // group labels → member samples, in first-seen order. The group of
        // a sample is found by a signature string; its labels are built once
        // per group.
        let mut groups: Vec<(Labels, Vec<Sample>)> = Vec::new();
        let mut index_of: HashMap<String, usize> = HashMap::new();
        let mut signature = String::new();
        let in_group = |name: &String| match &aggregate.grouping {
            None => false,
            Some((true, names)) => names.contains(name),
            Some((false, names)) => name.as_str() != METRIC_NAME && !names.contains(name),
        };
        for sample in samples {
            signature.clear();
            for (name, value) in sample.labels.iter().filter(|(name, _)| in_group(name)) {
                signature.push_str(name);
                signature.push('\u{ff}');
                signature.push_str(value);
                signature.push('\u{ff}');
            }
            match index_of.get(signature.as_str()) {
                Some(&index) => groups[index].1.push(sample),
                None => {
                    let key: Labels = sample
                        .labels
                        .iter()
                        .filter(|(name, _)| in_group(name))
                        .map(|(name, value)| (name.clone(), value.clone()))
                        .collect();
                    index_of.insert(signature.clone(), groups.len());
                    groups.push((key, vec![sample]));
                }
            }
        }
        let mut out = Vec::new();
        for (key, members) in groups {
            let values: Vec<f64> = members.iter().map(|sample| sample.value).collect();
            let labels = Arc::new(key);
            let value = match aggregate.op {
                AggOp::Sum => kahan_sum(&values),
                AggOp::Avg => kahan_sum(&values) / values.len() as f64,
                AggOp::Count => values.len() as f64,
                AggOp::Group => 1.0,
                AggOp::Min => values.iter().copied().fold(f64::NAN, |acc, v| {
                    if acc.is_nan() || v < acc { v } else { acc }
                }),
                AggOp::Max => values.iter().copied().fold(f64::NAN, |acc, v| {
                    if acc.is_nan() || v > acc { v } else { acc }
                }),
                AggOp::Stddev | AggOp::Stdvar => {
                    let n = values.len() as f64;
                    let mean = kahan_sum(&values) / n;
                    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                    if aggregate.op == AggOp::Stddev {
                        variance.sqrt()
                    } else {
                        variance
                    }
                }
                AggOp::Quantile => {
                    let mut values = values;
                    quantile(param.unwrap_or(f64::NAN), &mut values)
                }
                AggOp::Topk | AggOp::Bottomk => {
                    let k = param.unwrap_or(0.0);
                    if k < 1.0 {
                        continue;
                    }
                    let mut members = members;
                    members.sort_by(|a, b| {
                        let order = match (a.value.is_nan(), b.value.is_nan()) {
                            (true, true) => std::cmp::Ordering::Equal,
                            (true, false) => std::cmp::Ordering::Greater,
                            (false, true) => std::cmp::Ordering::Less,
                            _ if aggregate.op == AggOp::Topk => b.value.total_cmp(&a.value),
                            _ => a.value.total_cmp(&b.value),
                        };
                        order.then_with(|| a.labels.cmp(&b.labels))
                    });
                    let k = if k >= members.len() as f64 {
                        members.len()
                    } else {
                        k as usize
                    };
                    out.extend(members.into_iter().take(k));
                    continue;
                }
            };
            out.push(Sample { labels, value });
        }
        Ok(Value::Vector(out))
    }

    fn binary(&self, binary: &Binary, t: i64) -> Result<Value, PromError> {
        let lhs = self.eval(&binary.lhs, t)?;
        let rhs = self.eval(&binary.rhs, t)?;
        let op = binary.op;
        Ok(match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let (value, keep) = scalar_op(op, l, r);
                Value::Scalar(if is_comparison(op) {
                    if keep { 1.0 } else { 0.0 }
                } else {
                    value
                })
            }
            (Value::Vector(samples), Value::Scalar(scalar)) => Value::Vector(vector_scalar(
                op,
                samples,
                scalar,
                false,
                binary.return_bool,
            )),
            (Value::Scalar(scalar), Value::Vector(samples)) => {
                Value::Vector(vector_scalar(op, samples, scalar, true, binary.return_bool))
            }
            (Value::Vector(lhs), Value::Vector(rhs)) => Value::Vector(match op {
                BinOp::And | BinOp::Or | BinOp::Unless => set_op(op, lhs, rhs, &binary.matching),
                _ => vector_vector(op, lhs, rhs, &binary.matching, binary.return_bool)?,
            }),
            _ => {
                return Err(PromError::BadData(
                    "binary operators apply to scalars and instant vectors".to_owned(),
                ));
            }
        })
    }
}

/// Kahan-compensated sum (Prometheus 3 sums this way).
fn kahan_sum(values: &[f64]) -> f64 {
    let mut sum = 0.0;
    let mut compensation = 0.0;
    for &value in values {
        let t = sum + value;
        if sum.is_infinite() || t.is_infinite() {
            sum = t;
            continue;
        }
        if sum.abs() >= value.abs() {
            compensation += (sum - t) + value;
        } else {
            compensation += (value - t) + sum;
        }
        sum = t;
    }
    if compensation.is_finite() {
        sum + compensation
    } else {
        sum
    }
}

fn range_function(func: Func, points: &[Point], at: i64, range_ms: i64) -> Option<f64> {
    let values = || points.iter().map(|(_, value)| *value);
    match func {
        Func::Rate => extrapolated_rate(points, at, range_ms, true, true),
        Func::Increase => extrapolated_rate(points, at, range_ms, true, false),
        Func::Delta => extrapolated_rate(points, at, range_ms, false, false),
        Func::Irate => instant_value(points, true),
        Func::Idelta => instant_value(points, false),
        Func::SumOverTime => Some(kahan_sum(&values().collect::<Vec<_>>())),
        Func::AvgOverTime => Some(kahan_sum(&values().collect::<Vec<_>>()) / points.len() as f64),
        Func::CountOverTime => Some(points.len() as f64),
        Func::LastOverTime => points.last().map(|(_, value)| *value),
        Func::MinOverTime => {
            values().reduce(|acc, v| if acc.is_nan() || v < acc { v } else { acc })
        }
        Func::MaxOverTime => {
            values().reduce(|acc, v| if acc.is_nan() || v > acc { v } else { acc })
        }
        _ => None,
    }
}

/// `histogram_quantile(q, v)` over classic buckets: samples grouped by their
/// labels without `le` and `__name__`; samples without a parsable `le` are
/// ignored.
fn histogram_quantile(q: f64, samples: Vec<Sample>) -> Vec<Sample> {
    let mut groups: BTreeMap<Labels, Vec<Bucket>> = BTreeMap::new();
    for sample in samples {
        let Some(le) = sample.labels.get(BUCKET_LABEL) else {
            continue;
        };
        let Some(upper_bound) = parse_le(le) else {
            continue;
        };
        let mut labels = Labels::clone(&sample.labels);
        labels.remove(BUCKET_LABEL);
        labels.remove(METRIC_NAME);
        groups.entry(labels).or_default().push(Bucket {
            upper_bound,
            count: sample.value,
        });
    }
    groups
        .into_iter()
        .map(|(labels, buckets)| Sample {
            labels: Arc::new(labels),
            value: bucket_quantile(q, &buckets),
        })
        .collect()
}

/// A float as Go's `strconv.ParseFloat` reads `le` values (`+Inf`, `Inf`).
pub fn parse_le(text: &str) -> Option<f64> {
    match text.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

fn is_comparison(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
    )
}

fn drops_name(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow | BinOp::Atan2
    )
}

/// Prometheus' `vectorElemBinop`: the value and, for comparisons, whether
/// the comparison holds (arithmetic always keeps).
fn scalar_op(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Mod => (l % r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eq => (l, l == r),
        BinOp::Ne => (l, l != r),
        BinOp::Gt => (l, l > r),
        BinOp::Lt => (l, l < r),
        BinOp::Ge => (l, l >= r),
        BinOp::Le => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (l, true),
    }
}

fn vector_scalar(
    op: BinOp,
    samples: Vec<Sample>,
    scalar: f64,
    scalar_left: bool,
    return_bool: bool,
) -> Vec<Sample> {
    samples
        .into_iter()
        .filter_map(|sample| {
            let (l, r) = if scalar_left {
                (scalar, sample.value)
            } else {
                (sample.value, scalar)
            };
            let (mut value, keep) = scalar_op(op, l, r);
            // A comparison keeps the vector's value even when the scalar is
            // on the left.
            if is_comparison(op) && scalar_left {
                value = r;
            }
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                return None;
            }
            let labels = if return_bool || drops_name(op) {
                without_name(&sample.labels)
            } else {
                sample.labels
            };
            Some(Sample { labels, value })
        })
        .collect()
}

/// The match signature of a sample: its `on` labels, or all labels but the
/// `ignoring` ones and the name.
fn signature(labels: &Labels, matching: &Matching) -> String {
    let mut signature = String::new();
    for (name, value) in labels {
        let counted = if matching.on {
            matching.labels.contains(name)
        } else {
            name != METRIC_NAME && !matching.labels.contains(name)
        };
        if counted {
            signature.push_str(name);
            signature.push('\u{ff}');
            signature.push_str(value);
            signature.push('\u{ff}');
        }
    }
    signature
}

fn vector_vector(
    op: BinOp,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    matching: &Matching,
    return_bool: bool,
) -> Result<Vec<Sample>, PromError> {
    // One-to-many is many-to-one with the sides swapped.
    let swapped = matching.card == Card::OneToMany;
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_side: HashMap<String, Sample> = HashMap::with_capacity(one.len());
    for sample in one {
        let signature = signature(&sample.labels, matching);
        if one_side.contains_key(&signature) {
            let side = if swapped { "left" } else { "right" };
            return Err(execution(format!(
                "found duplicate series for the match group on the {side} hand-side of the \
                 operation: many-to-many matching not allowed: matching labels must be unique \
                 on one side"
            )));
        }
        one_side.insert(signature, sample);
    }
    let mut matched: HashMap<String, HashSet<Arc<Labels>>> = HashMap::new();
    let mut out = Vec::new();
    for sample in many {
        let signature = signature(&sample.labels, matching);
        let Some(other) = one_side.get(&signature) else {
            continue;
        };
        let (l, r) = if swapped {
            (other.value, sample.value)
        } else {
            (sample.value, other.value)
        };
        let (mut value, keep) = scalar_op(op, l, r);
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let mut labels = result_labels(&sample.labels, &other.labels, op, matching);
        if return_bool {
            labels.remove(METRIC_NAME);
        }
        let labels = Arc::new(labels);
        let seen = matched.entry(signature).or_default();
        if matching.card == Card::OneToOne {
            if !seen.is_empty() {
                return Err(execution(
                    "multiple matches for labels: many-to-one matching must be explicit \
                     (group_left/group_right)",
                ));
            }
        } else if seen.contains(&labels) {
            return Err(execution(
                "multiple matches for labels: grouping labels must ensure unique matches",
            ));
        }
        seen.insert(labels.clone());
        out.push(Sample { labels, value });
    }
    Ok(out)
}

/// Prometheus' `resultMetric`.
fn result_labels(many: &Labels, one: &Labels, op: BinOp, matching: &Matching) -> Labels {
    let mut labels = many.clone();
    if drops_name(op) {
        labels.remove(METRIC_NAME);
    }
    if matching.card == Card::OneToOne {
        if matching.on {
            labels.retain(|name, _| matching.labels.contains(name));
        } else {
            for name in &matching.labels {
                labels.remove(name);
            }
        }
    }
    for name in &matching.include {
        match one.get(name).filter(|value| !value.is_empty()) {
            Some(value) => {
                labels.insert(name.clone(), value.clone());
            }
            None => {
                labels.remove(name);
            }
        }
    }
    labels
}

fn set_op(op: BinOp, lhs: Vec<Sample>, rhs: Vec<Sample>, matching: &Matching) -> Vec<Sample> {
    match op {
        BinOp::And | BinOp::Unless => {
            let right: HashSet<String> = rhs
                .iter()
                .map(|sample| signature(&sample.labels, matching))
                .collect();
            let want = op == BinOp::And;
            lhs.into_iter()
                .filter(|sample| right.contains(&signature(&sample.labels, matching)) == want)
                .collect()
        }
        _ => {
            let left: HashSet<String> = lhs
                .iter()
                .map(|sample| signature(&sample.labels, matching))
                .collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|sample| !left.contains(&signature(&sample.labels, matching))),
            );
            out
        }
    }
}
