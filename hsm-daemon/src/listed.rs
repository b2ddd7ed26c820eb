//! `listed_enum!`: a fieldless enum declared together with `ALL`, the list
//! of its variants, so that tables and tests that walk every variant cannot
//! miss one added later.

/// Declares a fieldless enum and `ALL`, every variant in declaration order.
macro_rules! listed_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident, )*
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$variant_meta])* $variant, )*
        }

        impl $name {
            /// Every variant, in declaration order (generated with the enum).
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
        }
    };
}
