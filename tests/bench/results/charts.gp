# gnuplot script written by scalloc_bench; run in this directory.
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
  set terminal pngcairo size 1680,1030 font ',9'
} else {
  set terminal png size 1680,1030
}
set datafile missing '?'
set logscale x 2
set xtics (1, 2, 4, 8, 16)
set xrange [0.8:20]
set xlabel 'threads'
set grid
set key top left font ',8'
set yrange [0:*]
set output 'throughput.png'
set ylabel 'Mops/s'
set multiplot layout 3,4 title "scalloc benchmark: Throughput (higher is better) — 2 cores"
set title 'threadtest'
plot 'plot/throughput_threadtest.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/throughput_threadtest.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/throughput_threadtest.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/throughput_threadtest.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/throughput_threadtest.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set title 'larson'
plot 'plot/throughput_larson.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/throughput_larson.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/throughput_larson.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/throughput_larson.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/throughput_larson.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set title 'prodcons'
plot 'plot/throughput_prodcons.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/throughput_prodcons.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/throughput_prodcons.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/throughput_prodcons.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/throughput_prodcons.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set title 'cache-thrash'
plot 'plot/throughput_cache-thrash.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/throughput_cache-thrash.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/throughput_cache-thrash.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/throughput_cache-thrash.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/throughput_cache-thrash.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set title 'cache-scratch'
plot 'plot/throughput_cache-scratch.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/throughput_cache-scratch.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/throughput_cache-scratch.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/throughput_cache-scratch.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/throughput_cache-scratch.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set title 'mixed'
plot 'plot/throughput_mixed.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/throughput_mixed.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/throughput_mixed.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/throughput_mixed.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/throughput_mixed.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set title 'churn'
plot 'plot/throughput_churn.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/throughput_churn.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/throughput_churn.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/throughput_churn.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/throughput_churn.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set title 'frag'
plot 'plot/throughput_frag.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/throughput_frag.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/throughput_frag.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/throughput_frag.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/throughput_frag.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set logscale y
set yrange [*:*]
set title 'destroy (log scale)'
plot 'plot/throughput_destroy.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/throughput_destroy.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/throughput_destroy.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc'
unset logscale y
set yrange [0:*]
set title 'free-each'
plot 'plot/throughput_free-each.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/throughput_free-each.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/throughput_free-each.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/throughput_free-each.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/throughput_free-each.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
unset multiplot
set output 'rss.png'
set ylabel 'peak RSS MiB'
set multiplot layout 3,4 title "scalloc benchmark: Peak RSS (lower is better) — 2 cores"
set title 'threadtest'
plot 'plot/rss_threadtest.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/rss_threadtest.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/rss_threadtest.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/rss_threadtest.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/rss_threadtest.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set title 'larson'
plot 'plot/rss_larson.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/rss_larson.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/rss_larson.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/rss_larson.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/rss_larson.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set title 'prodcons'
plot 'plot/rss_prodcons.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/rss_prodcons.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/rss_prodcons.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/rss_prodcons.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/rss_prodcons.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set title 'cache-thrash'
plot 'plot/rss_cache-thrash.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/rss_cache-thrash.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/rss_cache-thrash.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/rss_cache-thrash.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/rss_cache-thrash.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set title 'cache-scratch'
plot 'plot/rss_cache-scratch.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/rss_cache-scratch.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/rss_cache-scratch.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/rss_cache-scratch.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/rss_cache-scratch.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set title 'mixed'
plot 'plot/rss_mixed.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/rss_mixed.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/rss_mixed.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/rss_mixed.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/rss_mixed.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set title 'churn'
plot 'plot/rss_churn.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/rss_churn.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/rss_churn.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/rss_churn.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/rss_churn.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set title 'frag'
plot 'plot/rss_frag.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/rss_frag.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/rss_frag.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/rss_frag.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/rss_frag.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
set title 'destroy'
plot 'plot/rss_destroy.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/rss_destroy.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/rss_destroy.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc'
set title 'free-each'
plot 'plot/rss_free-each.dat' using 1:2 with linespoints lt 1 lw 3 title 'scalloc', 'plot/rss_free-each.dat' using 1:3 with linespoints lt 2 lw 1 title 'glibc', 'plot/rss_free-each.dat' using 1:4 with linespoints lt 3 lw 1 title 'jemalloc', 'plot/rss_free-each.dat' using 1:5 with linespoints lt 4 lw 1 title 'mimalloc', 'plot/rss_free-each.dat' using 1:6 with linespoints lt 5 lw 1 title 'tcmalloc'
unset multiplot
reset
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
  set terminal pngcairo size 800,500 font ',10'
} else {
  set terminal png size 800,500
}
set output 'fragmentation.png'
set datafile missing '?'
set title 'Fragmentation: RSS after each phase, 1 thread(s)'
set ylabel 'MiB'
set yrange [0:*]
set grid
set key outside right top Left reverse width 2
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.8 border -1
plot 'plot/frag_phases.dat' using 2:xtic(1) title 'live' lc rgb 'gray', '' using 3 title 'scalloc' lt 1, '' using 4 title 'glibc' lt 2, '' using 5 title 'jemalloc' lt 3, '' using 6 title 'mimalloc' lt 4, '' using 7 title 'tcmalloc' lt 5
