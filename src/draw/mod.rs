//! What every figure is drawn with: the bundled font and PNG encoding, shared by the plots, the
//! report and the preview grid.

pub(crate) mod font;

/// PNG bytes of an RGB buffer, through the `image` crate the data stage already uses.
pub(crate) fn encode_png(rgb: Vec<u8>, (w, h): (u32, u32)) -> Result<Vec<u8>, String> {
    let img = image::RgbImage::from_raw(w, h, rgb).ok_or("buffer does not match the image size")?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(bytes.into_inner())
}
