//! Raw pointers to safe slices and back, with PKCS#11's rules for outputs: a null buffer
//! asks for the length, a short one gets `CKR_BUFFER_TOO_SMALL` and the length.

use pkcs11_wire::{ck, MAX_FRAME};

use crate::fns::object::AttrOut;
use crate::fns::{CkResult, Out};

/// Most attributes one template may hold: far beyond any real template, and small enough
/// that a caller's count is never trusted to size a slice of gigabytes.
pub const MAX_ATTRIBUTES: usize = 4096;

/// A caller's element count, bounded before any slice is made of it: nothing larger could
/// travel to the daemon in one frame, and `slice::from_raw_parts` needs the size in bytes
/// to fit an `isize`.
fn len(len: ck::CK_ULONG, max: usize) -> CkResult<usize> {
    match usize::try_from(len) {
        Ok(len) if len <= max => Ok(len),
        _ => Err(ck::CKR_ARGUMENTS_BAD),
    }
}

/// `len` bytes at `ptr` (a null pointer is fine for no bytes).
///
/// Safety: a non-null `ptr` points to `len` readable bytes that outlive `'a`.
pub unsafe fn bytes<'a>(ptr: *const u8, count: ck::CK_ULONG) -> CkResult<&'a [u8]> {
    let count = len(count, MAX_FRAME)?;
    if count == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(ck::CKR_ARGUMENTS_BAD);
    }
    // SAFETY: non-null, the caller promises `count` readable bytes, and `count` is at most
    // MAX_FRAME, so the slice's size fits an isize.
    Ok(unsafe { std::slice::from_raw_parts(ptr, count) })
}

/// `count` items at `ptr`, as [`bytes`].
///
/// Safety: a non-null `ptr` points to `count` initialised, aligned `T`s.
pub unsafe fn items<'a, T>(ptr: *const T, count: ck::CK_ULONG) -> CkResult<&'a [T]> {
    let count = len(count, MAX_ATTRIBUTES)?;
    if count == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(ck::CKR_ARGUMENTS_BAD);
    }
    // SAFETY: non-null, the caller promises `count` initialised, aligned items, and
    // `count` is at most MAX_ATTRIBUTES, so the slice's size fits an isize.
    Ok(unsafe { std::slice::from_raw_parts(ptr, count) })
}

/// Stores `value` at `ptr`.
///
/// Safety: a non-null `ptr` is valid for writing one `T`.
pub unsafe fn write<T>(ptr: *mut T, value: T) -> CkResult<()> {
    if ptr.is_null() {
        return Err(ck::CKR_ARGUMENTS_BAD);
    }
    // SAFETY: non-null, and the caller promises it is writable; `write` does not read
    // (or drop) what was there.
    unsafe { ptr.write(value) };
    Ok(())
}

/// An output array and its in/out count (`pData`, `pulDataLen`).
pub struct OutList<'a, T> {
    ptr: *mut T,
    count: &'a mut ck::CK_ULONG,
}

impl<'a, T: Copy> OutList<'a, T> {
    /// Safety: a non-null `count` is a valid, aligned `CK_ULONG`; a non-null `ptr`
    /// points to `*count` writable `T`s; both outlive `'a`.
    pub unsafe fn new(ptr: *mut T, count: *mut ck::CK_ULONG) -> CkResult<OutList<'a, T>> {
        if count.is_null() {
            return Err(ck::CKR_ARGUMENTS_BAD);
        }
        // SAFETY: non-null, and the caller promises a valid CK_ULONG.
        let count = unsafe { &mut *count };
        Ok(OutList { ptr, count })
    }

    /// How many items fit: `None` when the application only asks for the count.
    pub fn capacity(&self) -> Option<usize> {
        if self.ptr.is_null() {
            None
        } else {
            Some(usize::try_from(*self.count).unwrap_or(usize::MAX))
        }
    }

    /// Writes `items`, or only their count when there is no room for them.
    pub fn put_all(&mut self, items: &[T]) -> CkResult<()> {
        match Out::short(items.len(), self.capacity()) {
            Some(Out::Len(n)) => self.set_count(n),
            Some(_) => {
                self.set_count(items.len())?;
                Err(ck::CKR_BUFFER_TOO_SMALL)
            }
            None => self.copy(items),
        }
    }

    fn copy(&mut self, items: &[T]) -> CkResult<()> {
        if self.capacity().is_none_or(|cap| cap < items.len()) {
            return Err(ck::CKR_GENERAL_ERROR);
        }
        // SAFETY: `ptr` has room for `capacity() >= items.len()` items (checked above),
        // and the application's buffer cannot overlap our own `items`.
        unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), self.ptr, items.len()) };
        self.set_count(items.len())
    }

    fn set_count(&mut self, n: usize) -> CkResult<()> {
        *self.count = ck::CK_ULONG::try_from(n).map_err(|_| ck::CKR_GENERAL_ERROR)?;
        Ok(())
    }
}

impl OutList<'_, u8> {
    /// Writes what a function with a variable-length output answered.
    pub fn put(&mut self, out: CkResult<Out>) -> CkResult<()> {
        match out? {
            Out::Len(n) => self.set_count(n),
            Out::TooSmall(n) => {
                self.set_count(n)?;
                Err(ck::CKR_BUFFER_TOO_SMALL)
            }
            Out::Data(data) => self.copy(&data),
        }
    }
}

/// The template of `C_GetAttributeValue`: read for the types and buffer sizes, then
/// written with the answers.
pub struct AttrTemplate<'a> {
    attributes: &'a mut [ck::CK_ATTRIBUTE],
}

impl<'a> AttrTemplate<'a> {
    /// Safety: a non-null `ptr` points to `count` initialised, aligned `CK_ATTRIBUTE`s,
    /// each with a non-null `pValue` writable for `ulValueLen` bytes.
    pub unsafe fn new(
        ptr: *mut ck::CK_ATTRIBUTE,
        count: ck::CK_ULONG,
    ) -> CkResult<AttrTemplate<'a>> {
        let count = len(count, MAX_ATTRIBUTES)?;
        if count == 0 {
            return Ok(AttrTemplate {
                attributes: &mut [],
            });
        }
        if ptr.is_null() {
            return Err(ck::CKR_ARGUMENTS_BAD);
        }
        // SAFETY: non-null, the caller promises `count` initialised, aligned attributes,
        // and `count` is at most MAX_ATTRIBUTES, so the slice's size fits an isize.
        let attributes = unsafe { std::slice::from_raw_parts_mut(ptr, count) };
        Ok(AttrTemplate { attributes })
    }

    /// Each attribute's type and the size of its buffer (`None`: no buffer).
    pub fn requests(&self) -> Vec<(ck::CK_ATTRIBUTE_TYPE, Option<usize>)> {
        self.attributes
            .iter()
            .map(|a| {
                let capacity = (!a.pValue.is_null())
                    .then(|| usize::try_from(a.ulValueLen).unwrap_or(usize::MAX));
                (a.type_, capacity)
            })
            .collect()
    }

    pub fn fill(self, answers: Vec<AttrOut>) {
        for (attribute, answer) in self.attributes.iter_mut().zip(answers) {
            attribute.ulValueLen = match answer {
                AttrOut::Unavailable => ck::CK_UNAVAILABLE_INFORMATION,
                AttrOut::Len(n) => n as ck::CK_ULONG,
                AttrOut::Value(value) => {
                    let fits =
                        usize::try_from(attribute.ulValueLen).is_ok_and(|cap| cap >= value.len());
                    if attribute.pValue.is_null() || !fits {
                        ck::CK_UNAVAILABLE_INFORMATION
                    } else {
                        // SAFETY: `pValue` is non-null and, as the caller promised,
                        // writable for `ulValueLen >= value.len()` bytes.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                value.as_ptr(),
                                attribute.pValue.cast::<u8>(),
                                value.len(),
                            )
                        };
                        value.len() as ck::CK_ULONG
                    }
                }
            };
        }
    }
}
