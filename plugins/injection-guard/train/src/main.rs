//! Rebuilds injection-guard's model from the labelled sources in
//! `sources.toml`, and reports how it does on each source, including the
//! held-out ones it never saw. `--check` rebuilds and compares with the
//! committed weights instead of writing them (CI runs it).

mod data;
mod fit;

use std::path::PathBuf;

use anyhow::bail;
use clap::Parser;
use injection_guard::{
    features::Features,
    model::{self, Model},
};

use data::{Source, Split};
use fit::{Example, Params};

#[derive(Parser)]
#[command(about = "Rebuild injection-guard's model weights and report per-source quality")]
struct Args {
    /// The training manifest.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/sources.toml"))]
    manifest: PathBuf,
    /// Where the weights go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../model/weights.bin"))]
    out: PathBuf,
    /// Compare the rebuilt weights with `--out` instead of writing them; exit 1 if they differ.
    #[arg(long)]
    check: bool,
    /// Also report each training source as scored by a model trained without it.
    #[arg(long)]
    leave_one_out: bool,
    /// Score at or above which the filter flags (annotates) a message, as in
    /// the bundled chain.
    #[arg(long, default_value_t = 0.35)]
    flag_at: f32,
    /// Score at or above which the filter rejects a message.
    #[arg(long, default_value_t = 0.8)]
    reject_at: f32,
    /// Passes over the training data (the committed weights use the default).
    #[arg(long, default_value_t = 6)]
    epochs: usize,
    /// AdaGrad's learning rate.
    #[arg(long, default_value_t = 0.1)]
    rate: f64,
    /// L2 penalty per update.
    #[arg(long, default_value_t = 1e-6)]
    l2: f64,
    /// Leave these sources out of training, to try what they add (repeatable).
    #[arg(long)]
    without: Vec<String>,
    /// Only print the committed model's score for each of these texts.
    #[arg(long)]
    score: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.score.is_empty() {
        let bytes = std::fs::read(&args.out)?;
        let model = Model::parse(&bytes)?;
        let (mut features, mut sums) = (Features::default(), Vec::new());
        for text in &args.score {
            features.extract(text);
            println!("{:.3}  {text}", model.score(&features, &mut sums));
        }
        return Ok(());
    }
    let mut sources = data::load(&args.manifest)?;
    sources.retain(|s| !args.without.contains(&s.spec.id));
    let params = Params {
        epochs: args.epochs,
        rate: args.rate,
        l2: args.l2,
        seed: 0x5EED_1234,
    };
    for source in &sources {
        let spec = &source.spec;
        println!(
            "{} ({:?}, {} texts): {}; {}",
            spec.id,
            spec.split,
            source.texts.len(),
            spec.origin,
            spec.license
        );
    }
    println!();
    let weights = train(&sources, None, &params);
    let model_bytes = model::encode(&weights.weights, weights.bias);

    println!(
        "| source | split | attacks | flagged ≥ {} | rejected ≥ {} | benign | flagged ≥ {} |",
        args.flag_at, args.reject_at, args.flag_at
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    let model = Model::parse(&model_bytes)?;
    for source in &sources {
        let split = match source.spec.split {
            Split::Train => "train (seen)",
            Split::Holdout => "held out",
        };
        report(&model, source, split, &args);
    }
    held_out_summary(&model, &sources);
    if args.leave_one_out {
        for (i, source) in sources.iter().enumerate() {
            if source.spec.split != Split::Train {
                continue;
            }
            let fitted = train(&sources, Some(i), &params);
            let bytes = model::encode(&fitted.weights, fitted.bias);
            report(&Model::parse(&bytes)?, source, "left out", &args);
        }
    }

    if args.check {
        let committed = std::fs::read(&args.out)?;
        if committed != model_bytes {
            bail!(
                "{} differs from what the training data gives; rerun the trainer without --check and commit the weights",
                args.out.display()
            );
        }
        println!("{} is reproduced bit for bit", args.out.display());
    } else {
        std::fs::write(&args.out, &model_bytes)?;
        println!("wrote {} ({} bytes)", args.out.display(), model_bytes.len());
    }
    Ok(())
}

/// Fits on every training source except `left_out`. Each source's share of
/// its class grows with the square root of its size (times its `weight`), so
/// one big collection cannot drown the rest, and the classes weigh the same.
fn train(sources: &[Source], left_out: Option<usize>, params: &Params) -> fit::Fitted {
    let mut features = Features::default();
    let mut examples = Vec::new();
    let total: usize = sources
        .iter()
        .enumerate()
        .filter(|(i, s)| s.spec.split == Split::Train && Some(*i) != left_out)
        .map(|(_, s)| s.texts.len())
        .sum();
    let mut class_share = [0f64; 2];
    let mut shares = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        if source.spec.split != Split::Train || Some(i) == left_out {
            shares.push([0.0; 2]);
            continue;
        }
        let mut share = [0f64; 2];
        for class in [false, true] {
            let n = source.texts.iter().filter(|(_, p)| *p == class).count();
            share[usize::from(class)] = (n as f64).sqrt() * source.spec.weight;
            class_share[usize::from(class)] += share[usize::from(class)];
        }
        shares.push(share);
    }
    for (i, source) in sources.iter().enumerate() {
        let share = shares[i];
        for class in [false, true] {
            let c = usize::from(class);
            let n = source.texts.iter().filter(|(_, p)| *p == class).count();
            if n == 0 || share[c] == 0.0 {
                continue;
            }
            // Each class weighs half the texts, so an example averages one.
            let per_example = share[c] / class_share[c] * (total as f64 / 2.0) / n as f64;
            for (text, _) in source.texts.iter().filter(|(_, p)| *p == class) {
                features.extract(text);
                examples.push(Example {
                    ids: features.ids.clone(),
                    positive: class,
                    weight: per_example,
                });
                // A long ordinary text is also scored window by window, so
                // its windows must be learned as ordinary too.
                if !class {
                    for (from, to) in model::windows(features.words()) {
                        let begin = if from == 0 {
                            0
                        } else {
                            features.word_ends[from - 1] as usize
                        };
                        examples.push(Example {
                            ids: features.ids[begin..features.word_ends[to - 1] as usize].to_vec(),
                            positive: false,
                            weight: per_example,
                        });
                    }
                }
            }
        }
    }
    fit::fit(&examples, params)
}

fn report(model: &Model, source: &Source, split: &str, args: &Args) {
    let mut features = Features::default();
    let mut sums = Vec::new();
    let (mut attacks, mut flagged, mut rejected, mut benign, mut false_flags) = (0, 0, 0, 0, 0);
    for (text, positive) in &source.texts {
        features.extract(text);
        let score = model.score(&features, &mut sums);
        if *positive {
            attacks += 1;
            flagged += usize::from(score >= args.flag_at);
            rejected += usize::from(score >= args.reject_at);
        } else {
            benign += 1;
            false_flags += usize::from(score >= args.flag_at);
        }
    }
    let pct = |a: usize, b: usize| {
        if b == 0 {
            "—".to_owned()
        } else {
            format!("{:.1}%", 100.0 * a as f64 / b as f64)
        }
    };
    println!(
        "| {} | {split} | {attacks} | {} | {} | {benign} | {} |",
        source.spec.id,
        pct(flagged, attacks),
        pct(rejected, attacks),
        pct(false_flags, benign),
    );
}

/// Held-out attacks caught and held-out benign texts flagged, pooled, at a
/// range of thresholds: the trade-off to pick `flag_at` and `reject_at` from.
fn held_out_summary(model: &Model, sources: &[Source]) {
    let mut features = Features::default();
    let mut sums = Vec::new();
    let mut scores = [Vec::new(), Vec::new()];
    for source in sources.iter().filter(|s| s.spec.split == Split::Holdout) {
        for (text, positive) in &source.texts {
            features.extract(text);
            scores[usize::from(*positive)].push(model.score(&features, &mut sums));
        }
    }
    println!();
    println!("| threshold | held-out attacks at or above | held-out benign at or above |");
    println!("| ---: | ---: | ---: |");
    for t in [0.5, 0.6, 0.7, 0.8, 0.9, 0.95] {
        let share = |v: &Vec<f32>| {
            100.0 * v.iter().filter(|&&s| s >= t).count() as f64 / v.len().max(1) as f64
        };
        println!(
            "| {t} | {:.1}% | {:.1}% |",
            share(&scores[1]),
            share(&scores[0])
        );
    }
}
