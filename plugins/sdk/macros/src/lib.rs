//! The `#[filter]`, `#[partitioner]` and `#[map]` attributes of `sluice-plugin`; use them through that
//! crate (`#[sluice_plugin::filter]`), which documents them.
//!
//! Each keeps the function as written and adds, in an anonymous `const` block, the exports of
//! plugin ABI v1 (`sluice_abi_version`, `sluice_kind`, `sluice_alloc`, `sluice_init`,
//! `sluice_filter` or `sluice_partition`, `sluice_error_ptr`, `sluice_error_len`) and a
//! per-instance cell holding the state built from the params.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Type};

/// Turns `fn(record: &Record, state: &S) -> bool` into a filter plugin; `S` is
/// `sluice_plugin::Params` or any type implementing `sluice_plugin::FromParams`.
#[proc_macro_attribute]
pub fn filter(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Filter, attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Turns `fn(record: &Record, state: &S) -> Mapped` into a map plugin (ABI version 2); `S`
/// as for filters.
#[proc_macro_attribute]
pub fn map(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Map, attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Turns `fn(record: &Record, partitions: u32) -> u32` (or with a third argument
/// `state: &S`, as for filters) into a partitioner plugin.
#[proc_macro_attribute]
pub fn partitioner(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Partitioner, attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Filter,
    Partitioner,
    Map,
}

fn expand(kind: Kind, attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    if !attr.is_empty() {
        return Err(syn::Error::new(
            attr.span(),
            "this attribute takes no arguments",
        ));
    }
    let function: ItemFn = syn::parse2(item)?;
    let sig = &function.sig;
    if let Some(a) = &sig.asyncness {
        return Err(syn::Error::new(
            a.span(),
            "a plugin function cannot be async",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a plugin function cannot be generic",
        ));
    }
    let name = &sig.ident;
    let args: Vec<&FnArg> = sig.inputs.iter().collect();
    let (usage, state_index) = match kind {
        Kind::Filter => ("fn(record: &Record, params: &Params) -> bool", 1),
        Kind::Map => ("fn(record: &Record, params: &Params) -> Mapped", 1),
        Kind::Partitioner => (
            "fn(record: &Record, partitions: u32) -> u32, optionally with a third argument `state: &S`",
            2,
        ),
    };
    let arity_ok = match kind {
        Kind::Filter | Kind::Map => args.len() == 2,
        Kind::Partitioner => args.len() == 2 || args.len() == 3,
    };
    if !arity_ok {
        return Err(syn::Error::new(
            sig.inputs.span(),
            format!("expected {usage}"),
        ));
    }
    let state_ty: TokenStream2 = match args.get(state_index) {
        None => quote!(::sluice_plugin::Params),
        Some(arg) => {
            let ty = match arg {
                FnArg::Typed(pat) => &*pat.ty,
                FnArg::Receiver(r) => {
                    return Err(syn::Error::new(
                        r.span(),
                        "a plugin function takes no `self`",
                    ));
                }
            };
            match ty {
                Type::Reference(r) if r.mutability.is_none() => {
                    let elem = &r.elem;
                    quote!(#elem)
                }
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "the state argument must be a shared reference: `&Params` or `&S` where S: FromParams",
                    ));
                }
            }
        }
    };
    let span = sig.span();
    let rt = quote!(::sluice_plugin::rt);
    let abi_version = match kind {
        Kind::Map => quote!(::sluice_plugin::ABI_VERSION_MAP),
        Kind::Filter | Kind::Partitioner => quote!(::sluice_plugin::ABI_VERSION),
    };
    let entry = match kind {
        Kind::Filter => quote_spanned! {span=>
            #[unsafe(export_name = "sluice_kind")]
            extern "C" fn __sluice_kind() -> i32 {
                #rt::KIND_FILTER
            }

            #[unsafe(export_name = "sluice_filter")]
            extern "C" fn __sluice_filter(input_ptr: i32, input_len: i32, count: i32, out_ptr: i32) -> i32 {
                #rt::filter(&__SLUICE_STATE, (input_ptr, input_len, count, out_ptr), #name)
            }
        },
        Kind::Map => quote_spanned! {span=>
            #[unsafe(export_name = "sluice_kind")]
            extern "C" fn __sluice_kind() -> i32 {
                #rt::KIND_MAP
            }

            #[unsafe(export_name = "sluice_map")]
            extern "C" fn __sluice_map(input_ptr: i32, input_len: i32, count: i32, out_ptr: i32) -> i32 {
                #rt::map(&__SLUICE_STATE, (input_ptr, input_len, count, out_ptr), #name)
            }
        },
        Kind::Partitioner => {
            let call = if args.len() == 3 {
                quote!(#name)
            } else {
                quote!(|record: &::sluice_plugin::Record<'_>, partitions: u32, _: &__SluiceState| #name(record, partitions))
            };
            quote_spanned! {span=>
                #[unsafe(export_name = "sluice_kind")]
                extern "C" fn __sluice_kind() -> i32 {
                    #rt::KIND_PARTITIONER
                }

                #[unsafe(export_name = "sluice_partition")]
                extern "C" fn __sluice_partition(
                    input_ptr: i32,
                    input_len: i32,
                    count: i32,
                    partitions: i32,
                    out_ptr: i32,
                ) -> i32 {
                    #rt::partition(&__SLUICE_STATE, (input_ptr, input_len, count, partitions, out_ptr), #call)
                }
            }
        }
    };
    Ok(quote! {
        #function

        const _: () = {
            type __SluiceState = #state_ty;

            ::std::thread_local! {
                static __SLUICE_STATE: ::core::cell::OnceCell<__SluiceState> =
                    const { ::core::cell::OnceCell::new() };
            }

            #[unsafe(export_name = "sluice_abi_version")]
            extern "C" fn __sluice_abi_version() -> i32 {
                #abi_version
            }

            #[unsafe(export_name = "sluice_alloc")]
            extern "C" fn __sluice_alloc(size: i32) -> i32 {
                #rt::alloc(size)
            }

            #[unsafe(export_name = "sluice_init")]
            extern "C" fn __sluice_init(params_ptr: i32, params_len: i32) -> i32 {
                #rt::init::<__SluiceState>(&__SLUICE_STATE, params_ptr, params_len)
            }

            #[unsafe(export_name = "sluice_error_ptr")]
            extern "C" fn __sluice_error_ptr() -> i32 {
                #rt::error_ptr()
            }

            #[unsafe(export_name = "sluice_error_len")]
            extern "C" fn __sluice_error_len() -> i32 {
                #rt::error_len()
            }

            #entry
        };
    })
}
