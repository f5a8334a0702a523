//! The exercise screens, one file each, each a [`Component`]: its state, its keys and command list, its
//! drawing, its requests ([`Component::run`]) and how their results come back.
//!
//! A screen is registered here in one line: `Variant = module::Type for ScreenKind;` (the lab names the
//! screen of a step by its [`ScreenKind`]). From that list `screens!` generates, in one place:
//! - [`Screen`], which screen a step shows;
//! - [`Screens`], every screen's state (a field per screen, named after its module);
//! - [`Work`] and [`Done`], the app's requests and results, wrapping each screen's own;
//! - the dispatch of keys, results, busy / cancel / switch clean-up, ticks and drawing to the screen.
//!
//! Adding a screen: a new file with a type that implements [`Component`], and its line below.

use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders};

use super::component::{CommandInfo, Component, Ctx, FORM_COMMANDS, Io, Out};
use super::theme::bold;
use super::widgets::paragraph;
use dicomlab_lab::model::{Lab, ScreenKind, Step};

macro_rules! screens {
    ($( $variant:ident = $module:ident :: $ty:ident for $kind:ident; )*) => {
        $( pub mod $module; )*

        /// A screen below a step's instructions (the step pane alone is all a step without one has).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Screen {
            $( $variant, )*
        }

        impl Screen {
            /// Every screen, in the order of the registration.
            pub const ALL: &'static [Screen] = &[$( Screen::$variant, )*];

            /// How a lab names this screen.
            fn kind(self) -> ScreenKind {
                match self {
                    $( Screen::$variant => ScreenKind::$kind, )*
                }
            }

            /// The screen's name, on its border and in the help.
            pub fn title(self) -> &'static str {
                match self {
                    $( Screen::$variant => <$module::$ty as Component>::TITLE, )*
                }
            }
        }

        /// Every screen's state; a screen keeps it while the learner is on other steps.
        pub struct Screens {
            $( pub $module: $module::$ty, )*
        }

        /// A screen's request, for the runtime.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Work {
            $( $variant(<$module::$ty as Component>::Work), )*
        }

        /// A result of a screen's request, for the screen.
        #[derive(Debug, Clone)]
        pub enum Done {
            $( $variant(<$module::$ty as Component>::Done), )*
        }

        $(
            impl From<<$module::$ty as Component>::Work> for Work {
                fn from(w: <$module::$ty as Component>::Work) -> Work {
                    Work::$variant(w)
                }
            }

            impl From<<$module::$ty as Component>::Done> for Done {
                fn from(d: <$module::$ty as Component>::Done) -> Done {
                    Done::$variant(d)
                }
            }
        )*

        impl Work {
            /// The screen that asked for it.
            pub fn screen(&self) -> Screen {
                match self {
                    $( Work::$variant(_) => Screen::$variant, )*
                }
            }

            /// Runs it (on tokio): the screen's [`Component::run`], its results wrapped for the app.
            pub async fn run(self, io: Io<Done>) {
                match self {
                    $( Work::$variant(w) => {
                        <$module::$ty as Component>::run(w, io.map(Done::$variant)).await
                    } )*
                }
            }
        }

        impl Screens {
            /// Every screen as a lab starts it.
            pub fn new(lab: &Lab) -> Screens {
                Screens {
                    $( $module: <$module::$ty as Component>::new(lab), )*
                }
            }

            fn get(&self, screen: Screen) -> &dyn Dispatch {
                match screen {
                    $( Screen::$variant => &self.$module, )*
                }
            }

            fn get_mut(&mut self, screen: Screen) -> &mut dyn Dispatch {
                match screen {
                    $( Screen::$variant => &mut self.$module, )*
                }
            }

            /// A result, to the screen whose request sent it; what it asks of the app.
            pub fn done(&mut self, done: Done, ctx: &Ctx) -> (Screen, Vec<Out<Work>>) {
                match done {
                    $( Done::$variant(d) => (Screen::$variant, wrap(self.$module.done(d, ctx))), )*
                }
            }

            /// The learner said yes to a screen's question.
            pub fn confirmed(&mut self, yes: Work) -> (Screen, Vec<Out<Work>>) {
                match yes {
                    $( Work::$variant(w) => (Screen::$variant, wrap(self.$module.confirmed(w))), )*
                }
            }
        }
    };
}

screens! {
    Role = role::Role for Role;
    Environment = environment::Environment for Environment;
    Store = store::Store for Store;
    Search = search::Search for Search;
    Retrieve = retrieve::Retrieve for Retrieve;
    ChangeFeed = change_feed::ChangeFeed for ChangeFeed;
    Tags = tags::Tags for Tags;
}

impl Screen {
    /// The screen of a step (None: the step pane is all there is; the viewer draws in it).
    pub fn of(step: &Step) -> Option<Screen> {
        let kind = step.screen()?;
        Screen::ALL.iter().copied().find(|s| s.kind() == kind)
    }
}

/// A screen's own outs, for the app.
fn wrap<W>(outs: Vec<Out<W>>) -> Vec<Out<Work>>
where
    Work: From<W>,
{
    outs.into_iter().map(|o| o.map(Work::from)).collect()
}

/// What the app asks of any screen, without knowing which: [`Component`] with its own `Work` and
/// `Done` types wrapped into the app's. Implemented for every component.
trait Dispatch {
    fn unsupported(&self, ctx: &Ctx) -> Option<&'static str>;
    fn commands(&self, ctx: &Ctx) -> Vec<CommandInfo>;
    fn editing(&self) -> bool;
    fn key(&mut self, key: KeyEvent, ctx: &Ctx) -> Option<Vec<Out<Work>>>;
    fn busy(&self) -> bool;
    fn cancel(&mut self);
    fn entered(&mut self, step: &Step, ctx: &Ctx) -> Vec<Out<Work>>;
    fn switched(&mut self, ctx: &Ctx) -> Vec<Out<Work>>;
    fn animating(&self) -> bool;
    fn tick(&mut self, ctx: &Ctx) -> Vec<Out<Work>>;
    fn height(&self, ctx: &Ctx) -> u16;
    fn draw(&self, ctx: &Ctx, f: &mut Frame, area: Rect);
}

impl<C: Component> Dispatch for C
where
    Work: From<C::Work>,
{
    fn unsupported(&self, ctx: &Ctx) -> Option<&'static str> {
        C::unsupported(ctx)
    }
    fn commands(&self, ctx: &Ctx) -> Vec<CommandInfo> {
        Component::commands(self, ctx)
            .into_iter()
            .map(|c| c.info)
            .collect()
    }
    fn editing(&self) -> bool {
        Component::editing(self)
    }
    fn key(&mut self, key: KeyEvent, ctx: &Ctx) -> Option<Vec<Out<Work>>> {
        Component::key(self, key, ctx).map(wrap)
    }
    fn busy(&self) -> bool {
        Component::busy(self)
    }
    fn cancel(&mut self) {
        Component::cancel(self)
    }
    fn entered(&mut self, step: &Step, ctx: &Ctx) -> Vec<Out<Work>> {
        wrap(Component::entered(self, step, ctx))
    }
    fn switched(&mut self, ctx: &Ctx) -> Vec<Out<Work>> {
        wrap(Component::switched(self, ctx))
    }
    fn animating(&self) -> bool {
        Component::animating(self)
    }
    fn tick(&mut self, ctx: &Ctx) -> Vec<Out<Work>> {
        wrap(Component::tick(self, ctx))
    }
    fn height(&self, ctx: &Ctx) -> u16 {
        Component::height(self, ctx)
    }
    fn draw(&self, ctx: &Ctx, f: &mut Frame, area: Rect) {
        Component::draw(self, ctx, f, area)
    }
}

impl Screens {
    /// Why the target has nothing for a screen (it then says so and takes no key).
    pub fn unsupported(&self, screen: Screen, ctx: &Ctx) -> Option<&'static str> {
        self.get(screen).unsupported(ctx)
    }

    /// Whether a form of the screen has the keys (then no global key applies but Ctrl-C).
    pub fn editing(&self, screen: Screen) -> bool {
        self.get(screen).editing()
    }

    /// The screen's keys now, for the command bar (those marked `bar`) and the `?` help (all).
    pub fn commands(&self, screen: Screen, ctx: &Ctx) -> Vec<CommandInfo> {
        let s = self.get(screen);
        if s.unsupported(ctx).is_some() {
            Vec::new()
        } else if s.editing() {
            FORM_COMMANDS.to_vec()
        } else {
            s.commands(ctx)
        }
    }

    /// A key for the focused screen; None: not one of its keys.
    pub fn key(&mut self, screen: Screen, key: KeyEvent, ctx: &Ctx) -> Option<Vec<Out<Work>>> {
        let s = self.get_mut(screen);
        if s.unsupported(ctx).is_some() {
            return None;
        }
        s.key(key, ctx)
    }

    /// Whether a screen's request runs.
    pub fn busy(&self) -> bool {
        Screen::ALL.iter().any(|&s| self.get(s).busy())
    }

    /// Every request was aborted.
    pub fn cancel(&mut self) {
        for &s in Screen::ALL {
            self.get_mut(s).cancel();
        }
    }

    /// The learner arrived on a step with `screen`: it loads what it shows (nothing when the target
    /// has nothing for it).
    pub fn entered(&mut self, screen: Screen, step: &Step, ctx: &Ctx) -> Vec<Out<Work>> {
        let s = self.get_mut(screen);
        if s.unsupported(ctx).is_some() {
            return Vec::new();
        }
        s.entered(step, ctx)
    }

    /// Another target is open: every screen stops and forgets what came from the old one. Returns what
    /// the screen on the learner's step (`here`) asks for; empty, the learner moves on.
    pub fn switched(&mut self, here: Option<Screen>, ctx: &Ctx) -> Vec<Out<Work>> {
        let mut outs = Vec::new();
        for &s in Screen::ALL {
            let screen = self.get_mut(s);
            screen.cancel();
            let asked = screen.switched(ctx);
            if Some(s) == here {
                outs = asked;
            }
        }
        outs
    }

    /// Whether something on a screen moves by itself (the runtime ticks only then).
    pub fn animating(&self) -> bool {
        Screen::ALL.iter().any(|&s| self.get(s).animating())
    }

    /// The animation tick, to every screen.
    pub fn tick(&mut self, ctx: &Ctx) -> Vec<(Screen, Vec<Out<Work>>)> {
        Screen::ALL
            .iter()
            .map(|&s| (s, self.get_mut(s).tick(ctx)))
            .filter(|(_, outs)| !outs.is_empty())
            .collect()
    }

    /// The rows a screen wants, its border included (tables and trees want all there is).
    pub fn height(&self, screen: Screen, ctx: &Ctx) -> u16 {
        let s = self.get(screen);
        if s.unsupported(ctx).is_some() {
            4
        } else {
            s.height(ctx).saturating_add(2)
        }
    }

    /// Draws a screen in its border (bold while it has the keys), or why the target has nothing for it.
    pub fn draw(&self, screen: Screen, ctx: &Ctx, f: &mut Frame, area: Rect) {
        let block = Block::default()
            .borders(Borders::ALL)
            .title(format!(" {} ", screen.title()))
            .border_style(if ctx.focused {
                bold()
            } else {
                Style::default()
            });
        let inner = block.inner(area);
        f.render_widget(block, area);
        let s = self.get(screen);
        if let Some(why) = s.unsupported(ctx) {
            let sym = ctx.theme.glyph("–", "-");
            paragraph(
                f,
                inner,
                vec![Line::from(vec![
                    Span::styled(sym, ctx.theme.fg(Color::DarkGray)),
                    Span::raw(format!(" not supported: {why}")),
                ])],
            );
            return;
        }
        s.draw(ctx, f, inner);
    }
}
