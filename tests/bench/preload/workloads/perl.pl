# String work: a hash of 200k keys, joins and splits, regex substitution,
# sorting, growing strings.
use strict; use warnings; use Digest::MD5 qw(md5_hex);
my %h; my $acc = "";
for my $i (1 .. 200000) { $h{"key$i"} = "v" x ($i % 50) . $i; }
for my $r (1 .. 3) {
    my @k = sort keys %h;
    my $s = join(",", @k[0 .. 49999]);
    (my $t = $s) =~ s/key(\d+)/K$1-$r/g;
    my @parts = split(/,/, $t);
    $acc .= scalar(@parts) . length($t);
    my $big = "";
    $big .= $_ for @parts;
    $acc .= length($big);
    delete $h{"key$_"} for (1 .. 20000 * $r);
    $h{"new$r-$_"} = reverse($_) x 3 for (1 .. 20000);
}
print md5_hex($acc . scalar(keys %h)), "\n";
