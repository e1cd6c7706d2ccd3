//! The element's settings, one type per concern, each declaring its properties once.
//!
//! - [`engine`]: the model and where it runs (provider, card, batching, the clip queue);
//! - [`sampling`]: which frames form clips and how they are cropped and resampled;
//! - [`objects`]: objects mode: what clips show, which detections count, tracks' lifetime;
//! - [`output`]: what results say and where they go (labels, top-k, smoothing, segments,
//!   messages, analytics metadata);
//! - [`server`]: the remote inference servers (used when `server` is set).
//!
//! A group lists its properties as [`Property`] values: the GLib declaration (name, blurb, range,
//! default, when it may change) and how it reads and writes the group's field. Ranges and
//! defaults are constants of the group ([`Range`]), used by its `Default` too. Adding a property
//! is one field, its default and one entry in its group's list; the element's `properties`,
//! `set_property` and `property` go through [`Settings::properties`].

use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;

pub mod engine;
pub mod objects;
pub mod output;
pub mod sampling;
pub mod server;

pub use engine::EngineSettings;
pub use objects::ObjectSettings;
pub use output::OutputSettings;
pub use sampling::ClipSettings;
pub use server::ServerSettings;

/// Every setting of one element.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub engine: EngineSettings,
    pub sampling: ClipSettings,
    pub objects: ObjectSettings,
    pub output: OutputSettings,
    pub server: ServerSettings,
}

impl Settings {
    /// Every settable or readable property of the element's settings, in the order gst-inspect
    /// lists them.
    pub fn properties() -> &'static [Property<Settings>] {
        static PROPERTIES: LazyLock<Vec<Property<Settings>>> = LazyLock::new(|| {
            fn group<G: 'static>(
                properties: Vec<Property<G>>,
                field: fn(&mut Settings) -> &mut G,
            ) -> impl Iterator<Item = Property<Settings>> {
                properties.into_iter().map(move |p| p.within(field))
            }
            group(EngineSettings::properties(), |s| &mut s.engine)
                .chain(group(ClipSettings::properties(), |s| &mut s.sampling))
                .chain(group(ObjectSettings::properties(), |s| &mut s.objects))
                .chain(group(OutputSettings::properties(), |s| &mut s.output))
                .chain(group(ServerSettings::properties(), |s| &mut s.server))
                .collect()
        });
        PROPERTIES.as_ref()
    }

    /// The property named `name`.
    pub fn property(name: &str) -> Option<&'static Property<Settings>> {
        Self::properties().iter().find(|p| p.spec.name() == name)
    }
}

/// A numeric property's range and default, written once for its declaration, its setter and
/// the settings' `Default`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range<T> {
    pub min: T,
    pub max: T,
    pub default: T,
}

impl<T> Range<T> {
    pub const fn new(min: T, max: T, default: T) -> Self {
        Self { min, max, default }
    }
}

type Setter<S> = Box<dyn Fn(&mut S, &glib::Value) + Send + Sync>;
type Getter<S> = Box<dyn Fn(&mut S) -> glib::Value + Send + Sync>;

/// One property of a settings type `S`: its GLib declaration, and how a value is written into
/// and read from `S`. Values reaching the setter were checked against the declaration by GLib;
/// one of another type (impossible through GObject) leaves the default.
pub struct Property<S> {
    pub spec: glib::ParamSpec,
    set: Setter<S>,
    get: Getter<S>,
}

/// A constructor of [`Property`] for a numeric type: declared with its [`Range`], settable up
/// to READY.
macro_rules! numeric_property {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $spec:ty) => {
        $(#[$doc])*
        pub fn $name(
            name: &str,
            nick: &str,
            blurb: &str,
            range: Range<$ty>,
            field: fn(&mut S) -> &mut $ty,
        ) -> Self {
            let spec = <$spec>::builder(name)
                .nick(nick)
                .blurb(blurb)
                .minimum(range.min)
                .maximum(range.max)
                .default_value(range.default)
                .mutable_ready()
                .build();
            Self::field(spec, range.default, field)
        }
    };
}

impl<S: 'static> Property<S> {
    /// Write `value` into `settings`.
    pub fn set(&self, settings: &mut S, value: &glib::Value) {
        (self.set)(settings, value)
    }

    /// Read it from `settings` (mutable only because fields are reached through one accessor).
    pub fn get(&self, settings: &mut S) -> glib::Value {
        (self.get)(settings)
    }

    /// A property of any type: its declaration, its setter and its getter.
    pub fn custom(
        spec: glib::ParamSpec,
        set: impl Fn(&mut S, &glib::Value) + Send + Sync + 'static,
        get: impl Fn(&mut S) -> glib::Value + Send + Sync + 'static,
    ) -> Self {
        Self {
            spec,
            set: Box::new(set),
            get: Box::new(get),
        }
    }

    /// A property stored as a plain field of a type GLib values hold, `default` when a value
    /// does not convert.
    fn field<T>(spec: glib::ParamSpec, default: T, field: fn(&mut S) -> &mut T) -> Self
    where
        T: ToValue + for<'v> glib::value::FromValue<'v> + Clone + Send + Sync + 'static,
    {
        Self::custom(
            spec,
            move |s, v| *field(s) = v.get::<T>().unwrap_or_else(|_| default.clone()),
            move |s| field(s).to_value(),
        )
    }

    numeric_property!(
        /// An unsigned integer in `range`, settable up to READY.
        uint, u32, glib::ParamSpecUInt
    );
    numeric_property!(
        /// A signed integer in `range`, settable up to READY.
        int, i32, glib::ParamSpecInt
    );
    numeric_property!(
        /// A floating-point number in `range`, settable up to READY.
        double, f64, glib::ParamSpecDouble
    );

    /// A string, unset by default, settable up to READY.
    pub fn string(
        name: &str,
        nick: &str,
        blurb: &str,
        field: fn(&mut S) -> &mut Option<String>,
    ) -> Self {
        let spec = glib::ParamSpecString::builder(name)
            .nick(nick)
            .blurb(blurb)
            .mutable_ready()
            .build();
        Self::field(spec, None, field)
    }

    /// A boolean that may change while PLAYING.
    pub fn boolean_playing(
        name: &str,
        nick: &str,
        blurb: &str,
        default: bool,
        field: fn(&mut S) -> &mut bool,
    ) -> Self {
        let spec = glib::ParamSpecBoolean::builder(name)
            .nick(nick)
            .blurb(blurb)
            .default_value(default)
            .mutable_playing()
            .build();
        Self::field(spec, default, field)
    }

    /// One of the enum `E`, its `Default` by default, settable up to READY (or while PLAYING
    /// with `playing`).
    pub fn enumeration<E>(
        name: &str,
        nick: &str,
        blurb: &str,
        playing: bool,
        field: fn(&mut S) -> &mut E,
    ) -> Self
    where
        E: glib::prelude::StaticType
            + glib::translate::FromGlib<i32>
            + glib::translate::IntoGlib<GlibType = i32>
            + ToValue
            + for<'v> glib::value::FromValue<'v>
            + Default
            + Copy
            + Send
            + Sync
            + 'static,
    {
        let builder = glib::ParamSpecEnum::builder_with_default(name, E::default())
            .nick(nick)
            .blurb(blurb);
        let spec = if playing {
            builder.mutable_playing().build()
        } else {
            builder.mutable_ready().build()
        };
        Self::field(spec, E::default(), field)
    }

    /// The same property for a type `T` holding `S` (a group within [`Settings`]).
    pub fn within<T: 'static>(self, group: fn(&mut T) -> &mut S) -> Property<T> {
        let (set, get) = (self.set, self.get);
        Property {
            spec: self.spec,
            set: Box::new(move |t, v| set(group(t), v)),
            get: Box::new(move |t| get(group(t))),
        }
    }
}

#[cfg(test)]
mod tests;
