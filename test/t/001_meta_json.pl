# META.json against the PGXN meta spec 1.0.0 (https://pgxn.org/meta/spec.txt):
# required keys and their types, semantic versions, known license and phase
# names, files that exist, and a version derived from the one place it is
# kept, stockx_enrich.control (1.1 there is 1.1.0 here).
use strict;
use warnings;

use File::Basename qw(dirname);
use JSON::PP;
use Test::More;

my $top = dirname(dirname(dirname(__FILE__)));
$top = "$ENV{TESTDIR}/.." if !-f "$top/META.json" && $ENV{TESTDIR};
sub slurp
{
	open my $fh, '<', $_[0] or die "$_[0]: $!";
	local $/;
	return <$fh>;
}

my $meta = eval { JSON::PP->new->decode(slurp("$top/META.json")) };
if (!ok($meta && ref $meta eq 'HASH', 'META.json is a JSON object'))
{
	diag($@ // 'not an object');
	done_testing();
	exit 1;
}

my $semver = qr/^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+)?$/;
my %known_top = map { $_ => 1 } qw(name version abstract maintainer license provides meta-spec
  description generated_by tags no_index prereqs release_status resources);

for my $key (qw(name version abstract maintainer license provides meta-spec))
{
	ok(exists $meta->{$key}, "required key $key is present");
}
my @unknown = grep { !$known_top{$_} && !/^x_/i } keys %$meta;
is_deeply(\@unknown, [], 'no key outside the spec (custom keys start with x_)');

like($meta->{name}, qr/^[A-Za-z][A-Za-z0-9_-]+$/, 'name is a valid distribution name');
like($meta->{version}, $semver, "version $meta->{version} is a semantic version");
ok(!ref $meta->{abstract} && length $meta->{abstract}, 'abstract is a non-empty string');
my @maint = ref $meta->{maintainer} ? @{ $meta->{maintainer} } : ($meta->{maintainer});
ok(@maint && !grep({ ref $_ || !length $_ } @maint), 'maintainer is a string or a list of strings');
my %licenses = map { $_ => 1 } qw(agpl_3 apache_1_1 apache_2_0 artistic_1 artistic_2 bsd
  freebsd gfdl_1_2 gfdl_1_3 gpl_1 gpl_2 gpl_3 lgpl_2_1 lgpl_3_0 mit mozilla_1_0 mozilla_1_1
  openssl perl_5 postgresql qpl_1_0 ssleay sun zlib open_source restricted unrestricted unknown);
my @lic = ref $meta->{license} eq 'ARRAY' ? @{ $meta->{license} } : ($meta->{license});
ok(!grep({ ref $_ || !$licenses{$_} } @lic), 'license is one of the spec\'s license names');
is($meta->{license}, 'postgresql', 'and it is the PostgreSQL License');
ok(-f "$top/LICENSE", 'a LICENSE file is shipped');

is(ref $meta->{'meta-spec'}, 'HASH', 'meta-spec is an object');
is($meta->{'meta-spec'}{version}, '1.0.0', 'meta-spec version is 1.0.0');

is(ref $meta->{provides}, 'HASH', 'provides is an object');
for my $ext (sort keys %{ $meta->{provides} })
{
	my $p = $meta->{provides}{$ext};
	ok($p->{file} && -f "$top/$p->{file}", "provides $ext: file $p->{file} exists");
	like($p->{version} // '', $semver, "provides $ext: version is a semantic version");
	ok(!defined $p->{docfile} || -f "$top/$p->{docfile}", "provides $ext: docfile exists");
}

if (exists $meta->{prereqs})
{
	my %phases = map { $_ => 1 } qw(configure build test runtime develop);
	my %relations = map { $_ => 1 } qw(requires recommends suggests conflicts);
	my @bad;
	for my $phase (keys %{ $meta->{prereqs} })
	{
		push @bad, "phase $phase" unless $phases{$phase};
		for my $rel (keys %{ $meta->{prereqs}{$phase} })
		{
			push @bad, "relation $rel" unless $relations{$rel};
			for my $name (keys %{ $meta->{prereqs}{$phase}{$rel} })
			{
				my $v = $meta->{prereqs}{$phase}{$rel}{$name};
				push @bad, "$name version $v" unless $v eq '0' || $v =~ $semver
				  || $v =~ /^(?:[<>=!]=?\s*\d[\d.]*\s*,?\s*)+$/;
			}
		}
	}
	is_deeply(\@bad, [], 'prereqs use the spec\'s phases, relations and versions');
}
ok(!exists $meta->{release_status} || $meta->{release_status} =~ /^(stable|testing|unstable)$/,
	'release_status is stable, testing or unstable');
ok(!exists $meta->{tags} || (ref $meta->{tags} eq 'ARRAY' && !grep { ref $_ || length $_ > 255 } @{ $meta->{tags} }),
	'tags is a list of short strings');

# the version lives in the control file; META.json says the same
my ($control) = slurp("$top/stockx_enrich.control") =~ /^default_version\s*=\s*'([^']+)'/m;
my $derived = join('.', (split /\./, $control), (0) x (3 - scalar(split /\./, $control)));
is($meta->{version}, $derived, "the distribution version is the control file's $control");
is($meta->{provides}{stockx_enrich}{version}, $derived, 'and so is the extension\'s');
ok(-f "$top/sql/stockx_enrich--1.0.sql", 'the base script named in provides is shipped');
like(slurp("$top/CHANGELOG.md"), qr/^## \Q$control\E\b/m, "CHANGELOG.md has a section for $control");

done_testing();
