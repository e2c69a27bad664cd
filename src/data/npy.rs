//! Reading and writing NumPy `.npy` arrays and `.npz` archives (npyz), into [`Tensor`]s, with
//! the declared size checked against the bytes present before anything is allocated.

use crate::error::{Error, Result};
use crate::ir::tensor::checked_numel;
use crate::ir::Tensor;
use npyz::{NpyFile, Order, TypeChar};
use std::io::Read;
use std::path::Path;

/// What one element type is read as.
fn read_values<R: Read>(npy: NpyFile<R>, path: &Path, available: u64) -> Result<Tensor<f64>> {
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| Error::data(path, format!("dimension {d} too large"))))
        .collect::<Result<_>>()?;
    let n = checked_numel(&shape).map_err(|e| Error::data(path, e.to_string()))?;
    if npy.order() == Order::Fortran && shape.len() > 1 {
        return Err(Error::data(path, "Fortran-ordered arrays are not supported; save with np.ascontiguousarray"));
    }
    let ts = match npy.dtype() {
        npyz::DType::Plain(ts) => ts,
        other => return Err(Error::data(path, format!("structured dtype {other:?} is not supported"))),
    };
    let width = ts.size_field();
    if (n as u64).saturating_mul(width) > available {
        return Err(Error::data(
            path,
            format!("header declares shape {shape:?} ({} bytes) but the file holds {available}", n as u64 * width),
        ));
    }
    let io = |e: std::io::Error| Error::data(path, e.to_string());
    let data: Vec<f64> = match (ts.type_char(), width) {
        (TypeChar::Float, 4) => npy.into_vec::<f32>().map_err(io)?.into_iter().map(f64::from).collect(),
        (TypeChar::Float, 8) => npy.into_vec::<f64>().map_err(io)?,
        (TypeChar::Uint, 1) => npy.into_vec::<u8>().map_err(io)?.into_iter().map(f64::from).collect(),
        (TypeChar::Int, 1) => npy.into_vec::<i8>().map_err(io)?.into_iter().map(f64::from).collect(),
        (TypeChar::Int, 4) => npy.into_vec::<i32>().map_err(io)?.into_iter().map(f64::from).collect(),
        (TypeChar::Int, 8) => npy.into_vec::<i64>().map_err(io)?.into_iter().map(|v| v as f64).collect(),
        (TypeChar::Uint, 8) => npy.into_vec::<u64>().map_err(io)?.into_iter().map(|v| v as f64).collect(),
        (TypeChar::Bool, 1) => npy.into_vec::<bool>().map_err(io)?.into_iter().map(|v| v as u8 as f64).collect(),
        _ => return Err(Error::data(path, format!("element type {ts} is not supported (use float32)"))),
    };
    Tensor::new(shape, data).map_err(|e| Error::data(path, e.to_string()))
}

/// Reads a `.npy` file, or the single array of a `.npz` archive, as f64 values (exact for
/// every supported element type up to 2^53).
pub fn read_array(path: impl AsRef<Path>) -> Result<Tensor<f64>> {
    let path = path.as_ref();
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz")) {
        let names = npz_names(path)?;
        match names.as_slice() {
            [one] => read_npz_array(path, one),
            _ => Err(Error::data(path, format!("holds {} arrays ({}); name one", names.len(), names.join(", ")))),
        }
    } else {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let npy = NpyFile::new(std::io::BufReader::new(file))
            .map_err(|e| Error::data(path, format!("not a valid .npy file: {e}")))?;
        read_values(npy, path, len)
    }
}

/// Names of the arrays in a `.npz` archive.
pub fn npz_names(path: &Path) -> Result<Vec<String>> {
    let npz =
        npyz::npz::NpzArchive::open(path).map_err(|e| Error::data(path, format!("not a valid .npz archive: {e}")))?;
    Ok(npz.array_names().map(str::to_string).collect())
}

/// Reads one named array of a `.npz` archive.
pub fn read_npz_array(path: impl AsRef<Path>, name: &str) -> Result<Tensor<f64>> {
    let path = path.as_ref();
    let mut npz =
        npyz::npz::NpzArchive::open(path).map_err(|e| Error::data(path, format!("not a valid .npz archive: {e}")))?;
    let file_name = npyz::npz::file_name_from_array_name(name);
    let available = npz
        .zip_archive()
        .by_name(&file_name)
        .map(|f| f.size())
        .map_err(|_| Error::data(path, format!("no array named '{name}'")))?;
    let npy = npz
        .by_name(name)
        .map_err(|e| Error::data(path, format!("array '{name}': {e}")))?
        .ok_or_else(|| Error::data(path, format!("no array named '{name}'")))?;
    read_values(npy, path, available)
}

/// Writes a float32 `.npy` file.
pub fn write_npy(path: impl AsRef<Path>, t: &Tensor<f32>) -> Result<()> {
    use npyz::WriterBuilder;
    let path = path.as_ref();
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(std::io::BufWriter::new(file))
        .begin_nd()
        .map_err(|e| Error::io(path, e))?;
    w.extend(t.data().iter().copied()).map_err(|e| Error::io(path, e))?;
    w.finish().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_truncation() {
        let dir = std::env::temp_dir().join(format!("robustcert-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npy");
        let t = Tensor::new(vec![2, 3], vec![1.0f32, -2.5, 3.0, 0.0, 1e-3, 7.0]).unwrap();
        write_npy(&p, &t).unwrap();
        let back = read_array(&p).unwrap();
        assert_eq!(back.shape(), &[2, 3]);
        assert_eq!(back.map(|v| v as f32), t);
        // A truncated file is an error, not a panic or a short read.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        assert!(read_array(&p).is_err());
        std::fs::write(&p, b"not numpy at all").unwrap();
        assert!(read_array(&p).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
