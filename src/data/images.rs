//! Image-folder datasets (the torchvision `ImageFolder` convention: `ROOT/<class>/<image>`),
//! decoded from PNG (ISO/IEC 15948) and JPEG (ISO/IEC 10918-1, JFIF) with the `image` crate.
//!
//! - Classes are the sub-folders of the root, sorted by name (byte order); class index = position.
//!   Files are sorted by name within each class, so the order never depends on the file system.
//! - Files ending in `.png`, `.jpg` or `.jpeg` (any case) are images; hidden files (`.DS_Store`)
//!   and other extensions are skipped; a class folder without images is an error.
//! - Every image must have the same width and height (no implicit resizing).
//! - Colour: 3 channels (RGB) by default; grey, grey+alpha and RGBA images are converted (grey is
//!   replicated, alpha is dropped, not composited). With 1 channel, colour images are converted to
//!   luma (`image`'s Rec. 709 weights 0.2126 R + 0.7152 G + 0.0722 B, rounded). 16-bit images are
//!   reduced to 8 bits (value * 255 / 65535, rounded).
//! - Pixels are 8-bit values 0..=255 in HWC order; [`super::dataset::Preprocess`] turns them into
//!   model inputs (by default x / 255 and HWC -> CHW).

use crate::error::{Error, Result};
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Largest accepted image side, in pixels (a decompression-bomb guard).
pub const MAX_SIDE: u32 = 16_384;

/// One decoded 8-bit image, HWC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image8 {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// `height * width * channels` values, row-major, channels last.
    pub pixels: Vec<u8>,
}

/// Whether a file name is one of the image types read here.
pub fn is_image_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
    !hidden
        && path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            let e = e.to_ascii_lowercase();
            e == "png" || e == "jpg" || e == "jpeg"
        })
}

/// Decodes one PNG or JPEG file to 8-bit pixels with `channels` (1 or 3) channels.
pub fn read_image(path: impl AsRef<Path>, channels: usize) -> Result<Image8> {
    let path = path.as_ref();
    if channels != 1 && channels != 3 {
        return Err(Error::InvalidArgument(format!("images can be read with 1 or 3 channels, not {channels}")));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = image::ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| Error::data(path, format!("cannot read: {e}")))?;
    if !matches!(reader.format(), Some(image::ImageFormat::Png) | Some(image::ImageFormat::Jpeg)) {
        return Err(Error::data(path, "not a PNG or JPEG image"));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| Error::data(path, format!("cannot decode image: {e}")))?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    if width == 0 || height == 0 {
        return Err(Error::data(path, "image has no pixels"));
    }
    let pixels = if channels == 3 { img.to_rgb8().into_raw() } else { img.to_luma8().into_raw() };
    Ok(Image8 { height, width, channels, pixels })
}

/// The classes of an image folder and their image files, both sorted by name.
pub fn scan_image_folder(root: impl AsRef<Path>) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let root = root.as_ref();
    let sorted_entries = |dir: &Path| -> Result<Vec<PathBuf>> {
        let mut v = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
            .collect::<Result<Vec<_>>>()?;
        v.sort();
        Ok(v)
    };
    if !root.is_dir() {
        return Err(Error::data(root, "is not a directory (an image folder holds one sub-folder per class)"));
    }
    let mut classes = Vec::new();
    for dir in sorted_entries(root)?.into_iter().filter(|p| p.is_dir()) {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::data(&dir, "class folder name is not valid UTF-8"))?
            .to_string();
        if name.starts_with('.') {
            continue;
        }
        let files: Vec<PathBuf> =
            sorted_entries(&dir)?.into_iter().filter(|p| p.is_file() && is_image_file(p)).collect();
        if files.is_empty() {
            return Err(Error::data(&dir, format!("class folder '{name}' holds no .png/.jpg/.jpeg images")));
        }
        classes.push((name, files));
    }
    if classes.is_empty() {
        return Err(Error::data(root, "holds no class sub-folders (expected ROOT/<class>/<image>.png)"));
    }
    Ok(classes)
}

/// All images of a folder dataset: pixels `[N, H, W, C]` (8-bit values), labels, class names
/// and ids (`class/file`, with `/` separators).
pub struct FolderImages {
    pub shape: [usize; 4],
    pub pixels: Vec<u8>,
    pub labels: Vec<usize>,
    pub class_names: Vec<String>,
    pub ids: Vec<String>,
    /// The files in load order.
    pub files: Vec<PathBuf>,
}

/// Reads every image of an image folder (see the module documentation for the rules).
pub fn read_image_folder(root: impl AsRef<Path>, channels: usize) -> Result<FolderImages> {
    let root = root.as_ref();
    let classes = scan_image_folder(root)?;
    let mut out = FolderImages {
        shape: [0, 0, 0, channels],
        pixels: Vec::new(),
        labels: Vec::new(),
        class_names: classes.iter().map(|c| c.0.clone()).collect(),
        ids: Vec::new(),
        files: Vec::new(),
    };
    let mut first: Option<(usize, usize, PathBuf)> = None;
    for (label, (name, files)) in classes.into_iter().enumerate() {
        for f in files {
            let img = read_image(&f, channels)?;
            match &first {
                None => first = Some((img.height, img.width, f.clone())),
                Some((h, w, p)) if (*h, *w) != (img.height, img.width) => {
                    return Err(Error::data(
                        &f,
                        format!(
                            "image is {}x{} (width x height) but {} is {w}x{h}; all images of a folder dataset \
                             must have the same size (resize them beforehand)",
                            img.width,
                            img.height,
                            p.display()
                        ),
                    ));
                }
                _ => {}
            }
            let file_name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            out.ids.push(format!("{name}/{file_name}"));
            out.labels.push(label);
            out.pixels.extend_from_slice(&img.pixels);
            out.files.push(f);
        }
    }
    let (h, w, _) = first.ok_or_else(|| Error::data(root, "holds no images"))?;
    out.shape = [out.labels.len(), h, w, channels];
    Ok(out)
}
