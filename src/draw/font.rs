//! The one font plot text uses. plotters' `ab_glyph` backend has no fonts of its own and fails
//! with `FontUnavailable` on any text until one is registered, so DejaVu Sans (Bitstream Vera
//! licence, see pipeline/fonts/) is compiled into the binary and registered on first use.

use std::sync::Once;

use plotters::style::{register_font, FontStyle};

static DEJAVU_SANS: &[u8] = include_bytes!("../../pipeline/fonts/DejaVuSans.ttf");

/// The family name every chart asks for.
pub(crate) const FAMILY: &str = "sans-serif";

pub(crate) fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // other styles fall back to Normal in plotters' ab_glyph font map
        if register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_err() {
            panic!("the bundled DejaVuSans.ttf does not parse");
        }
    });
}
