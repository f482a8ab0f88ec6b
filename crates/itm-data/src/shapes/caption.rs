//! Captions of `shapes` scenes and the meaning each one states.
//!
//! A caption mentions one or two objects with a random subset of their attributes, sometimes a
//! position on the grid, a spatial relation or the object count. Captions are ambiguous on
//! purpose: "a red shape" fits many images, as real captions fit more than their image.

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::scene::{Colour, GRID, Object, Scene, Shape, Size};

/// What a caption says about one object; `None` means "not stated".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Mention {
    /// Stated shape.
    pub shape: Option<Shape>,
    /// Stated colour.
    pub colour: Option<Colour>,
    /// Stated size.
    pub size: Option<Size>,
    /// Stated grid row.
    pub row: Option<usize>,
    /// Stated grid column.
    pub col: Option<usize>,
}

/// A spatial relation between the first and the second mention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Relation {
    /// First object in a column left of the second's.
    LeftOf,
    /// First object in a column right of the second's.
    RightOf,
    /// First object in a row above the second's.
    Above,
    /// First object in a row below the second's.
    Below,
}

/// Everything a caption states, in a form the attribute oracle can check.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Meaning {
    /// The mentioned objects (one or two).
    pub mentions: Vec<Mention>,
    /// A relation between `mentions[0]` and `mentions[1]`.
    pub relation: Option<Relation>,
    /// A stated number of objects.
    pub count: Option<usize>,
}

/// A caption and its meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caption {
    /// The caption text.
    pub text: String,
    /// What it states.
    pub meaning: Meaning,
}

impl Mention {
    /// Number of stated attributes.
    pub fn stated(&self) -> usize {
        usize::from(self.shape.is_some())
            + usize::from(self.colour.is_some())
            + usize::from(self.size.is_some())
            + usize::from(self.row.is_some())
            + usize::from(self.col.is_some())
    }

    /// Number of stated attributes that `object` has.
    pub fn matched(&self, object: &Object) -> usize {
        usize::from(self.shape == Some(object.shape))
            + usize::from(self.colour == Some(object.colour))
            + usize::from(self.size == Some(object.size))
            + usize::from(self.row == Some(object.row))
            + usize::from(self.col == Some(object.col))
    }

    /// Whether `object` has every stated attribute.
    pub fn fits(&self, object: &Object) -> bool {
        self.matched(object) == self.stated()
    }

    /// A random description of `object`: at least a shape or a colour.
    fn describe(object: &Object, rng: &mut impl Rng) -> Self {
        let mut mention = Mention {
            shape: rng.random_bool(0.95).then_some(object.shape),
            colour: rng.random_bool(0.95).then_some(object.colour),
            size: rng.random_bool(0.75).then_some(object.size),
            ..Default::default()
        };
        if mention.shape.is_none() && mention.colour.is_none() {
            mention.shape = Some(object.shape);
        }
        mention
    }

    /// Noun phrase with an indefinite article: "a small red circle", "an orange shape".
    fn phrase(&self, rng: &mut impl Rng) -> String {
        let mut words = Vec::new();
        if let Some(size) = self.size {
            words.push(size.word());
        }
        if let Some(colour) = self.colour {
            words.push(colour.word());
        }
        words.push(match self.shape {
            Some(shape) => shape.word(),
            None => ["shape", "object"][rng.random_range(0..2)],
        });
        let article = if words[0].starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {}", words.join(" "))
    }
}

impl Relation {
    /// Whether `first` stands in this relation to `second`.
    pub fn holds(self, first: &Object, second: &Object) -> bool {
        match self {
            Relation::LeftOf => first.col < second.col,
            Relation::RightOf => first.col > second.col,
            Relation::Above => first.row < second.row,
            Relation::Below => first.row > second.row,
        }
    }

    fn words(self) -> &'static str {
        match self {
            Relation::LeftOf => "to the left of",
            Relation::RightOf => "to the right of",
            Relation::Above => "above",
            Relation::Below => "below",
        }
    }
}

/// A true position phrase for `object` and the mention fields it states: the grid cell
/// ("at the top left", "in the center"), or only its row or column ("near the top").
fn position_phrase(object: &Object, rng: &mut impl Rng) -> (String, Option<usize>, Option<usize>) {
    const ROWS: [&str; GRID] = ["top", "middle", "bottom"];
    const COLS: [&str; GRID] = ["left", "center", "right"];
    let (row, col) = (object.row, object.col);
    let middle = GRID / 2;
    let mut options: Vec<(String, Option<usize>, Option<usize>)> = Vec::new();
    if row != middle {
        options.push((format!("near the {}", ROWS[row]), Some(row), None));
    }
    if col != middle {
        options.push((format!("on the {}", COLS[col]), None, Some(col)));
    }
    let cell = if (row, col) == (middle, middle) {
        "in the center".to_string()
    } else {
        format!("at the {} {}", ROWS[row], COLS[col])
    };
    // The full cell is the most frequent phrase.
    for _ in 0..2 {
        options.push((cell.clone(), Some(row), Some(col)));
    }
    options.swap_remove(rng.random_range(0..options.len()))
}

fn count_word(count: usize) -> &'static str {
    ["no", "one", "two", "three", "four", "five"][count.min(5)]
}

#[derive(Debug, Clone, Copy)]
enum Template {
    Single,
    Position,
    Relation,
    Pair,
    Count,
}

/// Five captions of `scene`, each from a different template where the scene allows.
pub fn captions_for(scene: &Scene, rng: &mut impl Rng) -> Vec<Caption> {
    let several = scene.objects.len() >= 2;
    let mut templates = vec![Template::Position, Template::Count];
    if several {
        templates.extend([Template::Relation, Template::Relation, Template::Pair]);
    } else {
        templates.extend([Template::Single, Template::Position]);
    }
    templates.shuffle(rng);
    templates
        .iter()
        .cycle()
        .take(5)
        .map(|&template| caption(scene, template, rng))
        .collect()
}

fn caption(scene: &Scene, template: Template, rng: &mut impl Rng) -> Caption {
    let objects = &scene.objects;
    let pick = |rng: &mut dyn rand::RngCore| rng.random_range(0..objects.len());
    match template {
        Template::Single => {
            let object = &objects[pick(rng)];
            let mention = Mention::describe(object, rng);
            let prefix = ["", "a picture of ", "an image with "][rng.random_range(0..3)];
            Caption {
                text: format!("{prefix}{}", mention.phrase(rng)),
                meaning: Meaning {
                    mentions: vec![mention],
                    ..Default::default()
                },
            }
        }
        Template::Position => {
            let object = &objects[pick(rng)];
            let mut mention = Mention::describe(object, rng);
            let (phrase, row, col) = position_phrase(object, rng);
            mention.row = row;
            mention.col = col;
            let lead = ["there is ", ""][rng.random_range(0..2)];
            Caption {
                text: format!("{lead}{} {phrase}", mention.phrase(rng)),
                meaning: Meaning {
                    mentions: vec![mention],
                    ..Default::default()
                },
            }
        }
        Template::Relation | Template::Pair => {
            let mut order: Vec<usize> = (0..objects.len()).collect();
            order.shuffle(rng);
            let (first, second) = (&objects[order[0]], &objects[order[1]]);
            let mentions = vec![
                Mention::describe(first, rng),
                Mention::describe(second, rng),
            ];
            let (one, two) = (mentions[0].phrase(rng), mentions[1].phrase(rng));
            let relation = match template {
                Template::Relation => {
                    let holding: Vec<Relation> = [
                        Relation::LeftOf,
                        Relation::RightOf,
                        Relation::Above,
                        Relation::Below,
                    ]
                    .into_iter()
                    .filter(|relation| relation.holds(first, second))
                    .collect();
                    Some(holding[rng.random_range(0..holding.len())])
                }
                _ => None,
            };
            let text = match relation {
                Some(relation) => format!("{one} {} {two}", relation.words()),
                None => format!("{one} and {two}"),
            };
            Caption {
                text,
                meaning: Meaning {
                    mentions,
                    relation,
                    count: None,
                },
            }
        }
        Template::Count => {
            let object = &objects[pick(rng)];
            let mention = Mention::describe(object, rng);
            let count = objects.len();
            let text = if count == 1 {
                format!("only one shape , {}", mention.phrase(rng))
            } else {
                format!(
                    "{} shapes including {}",
                    count_word(count),
                    mention.phrase(rng)
                )
            };
            Caption {
                text,
                meaning: Meaning {
                    mentions: vec![mention],
                    relation: None,
                    count: Some(count),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn every_caption_is_true_of_its_scene() {
        let mut rng = StdRng::seed_from_u64(4);
        for _ in 0..500 {
            let scene = Scene::random(&mut rng);
            let captions = captions_for(&scene, &mut rng);
            assert_eq!(captions.len(), 5);
            for caption in &captions {
                let meaning = &caption.meaning;
                for mention in &meaning.mentions {
                    assert!(scene.objects.iter().any(|o| mention.fits(o)), "{caption:?}");
                }
                if let Some(relation) = meaning.relation {
                    let holds = scene.objects.iter().any(|a| {
                        scene.objects.iter().any(|b| {
                            a != b
                                && meaning.mentions[0].fits(a)
                                && meaning.mentions[1].fits(b)
                                && relation.holds(a, b)
                        })
                    });
                    assert!(holds, "{caption:?} {scene:?}");
                }
                if let Some(count) = meaning.count {
                    assert_eq!(count, scene.objects.len());
                }
                assert!(!caption.text.trim().is_empty());
            }
        }
    }
}
