# workload.pl — a Perl workload for tests/real/perl.sh: hashes, string building, regexes,
# split/join, sort. Deterministic (own LCG, sorted key order), prints digests and counts only.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

my $seed = 12345;
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed; }

# Hash heavy: insert, update, delete, nested structures.
my %h;
for my $i (1 .. 300000) {
    my $k = join('', map { chr(97 + rnd() % 26) } 1 .. (3 + $i % 9));
    $h{$k} .= "$i,";
    $h{"n$i"} = { id => $i, list => [ ($i) x ($i % 7) ] } if $i % 5 == 0;
}
delete $h{"n$_"} for grep { $_ % 10 == 0 } 1 .. 300000;
my @keys = sort keys %h;
print "hash: ", scalar(@keys), " ", md5_hex(join("|", @keys[0 .. 999])), "\n";

# String heavy: repeated concatenation, substitution, reversal, sprintf.
my $s = '';
for my $i (1 .. 200000) { $s .= sprintf("%x:", rnd() % 65536); }
(my $t = $s) =~ s/([0-9a-f]+):/<$1>/g;
$t = reverse $t;
my $count = () = $t =~ /<[0-9]/g;
print "string: ", length($s), " ", length($t), " $count ", md5_hex($t), "\n";

# split/join/sort over a large list of records.
my @recs = map { join(",", rnd() % 1000, "w" . (rnd() % 5000), rnd() % 7) } 1 .. 200000;
my @sorted = sort { (split /,/, $a)[1] cmp (split /,/, $b)[1] or $a cmp $b } @recs[0 .. 50000];
my %groups;
push @{ $groups{ (split /,/)[2] } }, $_ for @recs;
print "records: ", md5_hex(join("\n", @sorted)), " ",
    join(" ", map { "$_=" . scalar(@{ $groups{$_} }) } sort keys %groups), "\n";

# Big strings: x operator, substr, and freeing them again.
my @big = map { ("abc" x (1000 * $_)) . $_ } 1 .. 300;
my $total = 0;
$total += length(substr($_, 100, 5000)) for @big;
@big = ();
print "big: $total\n";
