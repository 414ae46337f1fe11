"""The two colour maps of :mod:`smug.rendering.colormap` as 256-entry sRGB tables in hex, so that drawing a
map needs no matplotlib: ``viridis`` (CC0, van der Walt and Smith) and ``RdBu_r`` (ColorBrewer's RdBu, reversed),
each matplotlib's own table rounded to 8 bits (``tests/rendering/test_colormap.py`` holds them to matplotlib's)."""

from __future__ import annotations

TABLES = {
    "viridis": (
        "440154 440256 450457 450559 46075a 46085c 460a5d 460b5e 470d60 470e61 471063 471164 471365 481467 481668 "
        "481769 48186a 481a6c 481b6d 481c6e 481d6f 481f70 482071 482173 482374 482475 482576 482677 482878 482979 "
        "472a7a 472c7a 472d7b 472e7c 472f7d 46307e 46327e 46337f 463480 453581 453781 453882 443983 443a83 443b84 "
        "433d84 433e85 423f85 424086 424186 414287 414487 404588 404688 3f4788 3f4889 3e4989 3e4a89 3e4c8a 3d4d8a "
        "3d4e8a 3c4f8a 3c508b 3b518b 3b528b 3a538b 3a548c 39558c 39568c 38588c 38598c 375a8c 375b8d 365c8d 365d8d "
        "355e8d 355f8d 34608d 34618d 33628d 33638d 32648e 32658e 31668e 31678e 31688e 30698e 306a8e 2f6b8e 2f6c8e "
        "2e6d8e 2e6e8e 2e6f8e 2d708e 2d718e 2c718e 2c728e 2c738e 2b748e 2b758e 2a768e 2a778e 2a788e 29798e 297a8e "
        "297b8e 287c8e 287d8e 277e8e 277f8e 27808e 26818e 26828e 26828e 25838e 25848e 25858e 24868e 24878e 23888e "
        "23898e 238a8d 228b8d 228c8d 228d8d 218e8d 218f8d 21908d 21918c 20928c 20928c 20938c 1f948c 1f958b 1f968b "
        "1f978b 1f988b 1f998a 1f9a8a 1e9b8a 1e9c89 1e9d89 1f9e89 1f9f88 1fa088 1fa188 1fa187 1fa287 20a386 20a486 "
        "21a585 21a685 22a785 22a884 23a983 24aa83 25ab82 25ac82 26ad81 27ad81 28ae80 29af7f 2ab07f 2cb17e 2db27d "
        "2eb37c 2fb47c 31b57b 32b67a 34b679 35b779 37b878 38b977 3aba76 3bbb75 3dbc74 3fbc73 40bd72 42be71 44bf70 "
        "46c06f 48c16e 4ac16d 4cc26c 4ec36b 50c46a 52c569 54c568 56c667 58c765 5ac864 5cc863 5ec962 60ca60 63cb5f "
        "65cb5e 67cc5c 69cd5b 6ccd5a 6ece58 70cf57 73d056 75d054 77d153 7ad151 7cd250 7fd34e 81d34d 84d44b 86d549 "
        "89d548 8bd646 8ed645 90d743 93d741 95d840 98d83e 9bd93c 9dd93b a0da39 a2da37 a5db36 a8db34 aadc32 addc30 "
        "b0dd2f b2dd2d b5de2b b8de29 bade28 bddf26 c0df25 c2df23 c5e021 c8e020 cae11f cde11d d0e11c d2e21b d5e21a "
        "d8e219 dae319 dde318 dfe318 e2e418 e5e419 e7e419 eae51a ece51b efe51c f1e51d f4e61e f6e620 f8e621 fbe723 "
        "fde725"
    ),
    "RdBu_r": (
        "053061 063264 073467 08366a 09386d 0a3b70 0c3d73 0d3f76 0e4179 0f437b 10457e 114781 124984 134c87 144e8a "
        "15508d 175290 185493 195696 1a5899 1b5a9c 1c5c9f 1d5fa2 1e61a5 1f63a8 2065ab 2267ac 2369ad 246aae 266caf "
        "276eb0 2870b1 2a71b2 2b73b3 2c75b4 2e77b5 2f79b5 307ab6 327cb7 337eb8 3480b9 3681ba 3783bb 3885bc 3a87bd "
        "3b88be 3c8abe 3e8cbf 3f8ec0 408fc1 4291c2 4393c3 4695c4 4997c5 4c99c6 4f9bc7 529dc8 569fc9 59a1ca 5ca3cb "
        "5fa5cd 62a7ce 65a9cf 68abd0 6bacd1 6eaed2 71b0d3 75b2d4 78b4d5 7bb6d6 7eb8d7 81bad8 84bcd9 87beda 8ac0db "
        "8dc2dc 90c4dd 93c6de 96c7df 98c8e0 9bc9e0 9dcbe1 a0cce2 a2cde3 a5cee3 a7d0e4 a9d1e5 acd2e5 aed3e6 b1d5e7 "
        "b3d6e8 b6d7e8 b8d8e9 bbdaea bddbea c0dceb c2ddec c5dfec c7e0ed cae1ee cce2ef cfe4ef d1e5f0 d2e6f0 d4e6f1 "
        "d5e7f1 d7e8f1 d8e9f1 dae9f2 dbeaf2 ddebf2 deebf2 e0ecf3 e1edf3 e3edf3 e4eef4 e6eff4 e7f0f4 e9f0f4 eaf1f5 "
        "ecf2f5 edf2f5 eff3f5 f0f4f6 f2f5f6 f3f5f6 f5f6f7 f6f7f7 f7f6f6 f7f5f4 f8f4f2 f8f3f0 f8f2ef f8f1ed f9f0eb "
        "f9efe9 f9eee7 f9ede5 f9ebe3 faeae1 fae9df fae8de fae7dc fbe6da fbe5d8 fbe4d6 fbe3d4 fce2d2 fce0d0 fcdfcf "
        "fcdecd fdddcb fddcc9 fddbc7 fdd9c4 fcd7c2 fcd5bf fcd3bc fbd0b9 fbceb7 fbccb4 facab1 fac8af f9c6ac f9c4a9 "
        "f9c2a7 f8bfa4 f8bda1 f8bb9e f7b99c f7b799 f7b596 f6b394 f6b191 f6af8e f5ac8b f5aa89 f5a886 f4a683 f3a481 "
        "f2a17f f19e7d f09c7b ef9979 ee9677 ec9374 eb9172 ea8e70 e98b6e e8896c e6866a e58368 e48066 e37e64 e27b62 "
        "e17860 df765e de735c dd7059 dc6e57 db6b55 da6853 d86551 d7634f d6604d d55d4c d35a4a d25849 d05548 cf5246 "
        "ce4f45 cc4c44 cb4942 c94741 c84440 c6413e c53e3d c43b3c c2383a c13639 bf3338 be3036 bd2d35 bb2a34 ba2832 "
        "b82531 b72230 b61f2e b41c2d b3192c b1182b ae172a ab162a a81529 a51429 a21328 9f1228 9c1127 991027 960f27 "
        "930e26 900d26 8d0c25 8a0b25 870a24 840924 810823 7f0823 7c0722 790622 760521 730421 700320 6d0220 6a011f "
        "67001f"
    ),
}
